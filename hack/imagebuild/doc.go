// Command imagebuild builds bgplb's release artefacts without a container engine.
//
// It cross-compiles static (CGO_ENABLED=0) linux/amd64 and linux/arm64 binaries and
// assembles them with github.com/google/go-containerregistry into OCI image indexes:
//
//   - bgplb: /usr/local/bin/bgplbd (the entrypoint), /usr/local/bin/bgplbctl and the
//     chained CNI plugin /opt/bgplb/cni/bgplb. The DaemonSet (manifests/base) and the
//     Helm chart run these paths; they do not change between releases.
//   - podserver: /usr/local/bin/podserver, the conformance suite's pod server.
//
// Each image is an empty base plus one layer per platform plus a config carrying the
// OCI labels org.opencontainers.image.{source,revision,version,created}. The build is
// reproducible: binaries are built with -trimpath and an empty build ID, tar headers
// carry fixed owners and the commit time as mtime, and the config's created time is
// the commit time ($SOURCE_DATE_EPOCH overrides it), so the same commit gives the
// same index digest.
//
// Subcommands (see `imagebuild help`): build (OCI layout under _output/image/<name>
// plus an OCI archive <name>.tar), push, extract (one platform's files into a
// directory), tar, chart (a deterministic Helm chart package) and manifest (the
// manifests/base files in kustomization order, the image pinned by digest). The
// Makefile's image, image-bin, push and release targets drive it.
package main
