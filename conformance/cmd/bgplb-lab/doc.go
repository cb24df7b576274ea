// Command bgplb-lab brings the one-machine bgplb lab up and down for people:
// `bgplb-lab up|down|status|exec|kubeconfig`. The logic lives in package
// github.com/bgplb/bgplb/conformance/lab; this command only parses flags. Its hidden
// subcommands `forward` (the API forwarder on 127.0.0.1:16443) and `kubelet` (the lab
// kubelet of one node) are the processes `up` starts.
package main
