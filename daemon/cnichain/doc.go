// Package cnichain keeps the bgplb CNI plugin chained into the node's CNI configuration,
// and takes it out again.
//
// Who calls it: bgplbd (daemon/app, the Run loop, and Uninstall when its DaemonSet is
// removed) and bgplbctl (install-cni, uninstall-cni). See docs/design.md, "CNI chaining".
//
// The contract:
//
//   - The conflist bgplb is chained into is the one a container runtime uses: of the
//     files of the conf dir with the extensions .conf, .conflist and .json (libcni.ConfFiles),
//     the lexicographically first (Primary). Other files are never chained.
//   - Chain makes the primary a conflist whose last plugin is exactly the given bgplb entry,
//     and that holds it once. It is idempotent: a file that already satisfies this is not
//     written. A bgplb entry that a primary CNI left in front of plugins it added is moved
//     back to the end. A single-plugin .conf or .json is converted the way other chained
//     plugins (istio-cni) do it: its plugin becomes the first of a new <stem>.conflist
//     (libcni.ConfListFromConf) and the single-plugin file is removed.
//   - Every write is atomic (a temp file in the same directory, then rename), so a runtime
//     never reads a half-written file.
//   - Chain keeps, in the hidden directory .bgplb of the conf dir (ignored by libcni, which
//     skips directories), the primary's bytes from before it first changed them and a hash
//     of what it wrote. Unchain restores those bytes (and the file name) exactly when the
//     current file is still what Chain wrote; otherwise (the primary rewrote the file since)
//     it removes only the entries of type bgplb, from every conflist of the conf dir.
//   - InstallPlugin copies the plugin binary into the bin dir atomically; Run never chains
//     while the binary is missing from the bin dir (a chained plugin that does not exist
//     fails every pod's CNI ADD).
//   - Uninstall = Unchain, then remove the binary, then the pin dir on bpffs (the pinned
//     maps and links, so the programs detach). In that order: no pod ADD runs a plugin that
//     was removed.
//   - Run re-applies the desired state on every change of the conf dir (fsnotify) and on a
//     periodic resync; disabled, it never chains and unchains what it had chained.
package cnichain
