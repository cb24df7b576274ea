// Command bgplb-conformance runs the bgplb conformance suite against a cluster: the API
// server (--kubeconfig), a real BGP router (--router frr|bird, --router-exec) and a
// client outside the cluster (--client-exec), and writes a report (--report). It is
// the same entry point `go test` uses in the lab (package runner); the tests run as
// Go subtests, so the testing flags work too (-test.run 'TestConformance/DatapathLocalTCP',
// -test.short).
//
//	bgplb-conformance --kubeconfig ~/.kube/config \
//	  --router frr --router-exec "ssh admin@router sudo" \
//	  --client-exec "ssh tester@client" \
//	  --podserver-image ghcr.io/bgplb/podserver:v0.1.0 \
//	  --daemon-selector app.kubernetes.io/name=bgplb \
//	  --report bgplb-conformance.yaml
//
// It exits 0 when every test that ran passed, 1 otherwise (a broken --router-exec
// fails at once, naming the command that failed).
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/bgplb/bgplb/conformance/runner"
)

var version = "dev"

func main() {
	testing.Init()
	cfg := runner.AddFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "print the version and exit")
	// Verbose by default: the log of each test is the evidence behind the report.
	if err := flag.Set("test.v", "true"); err != nil {
		panic(err) // registered by testing.Init
	}
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s --kubeconfig FILE --router frr|bird --router-exec PREFIX [--client-exec PREFIX] [flags]\n\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if *showVersion {
		fmt.Println(version)
		return
	}
	if cfg.ImplementationVersion == "unknown" && version != "dev" {
		cfg.ImplementationVersion = version
	}
	testing.Main(regexp.MatchString, []testing.InternalTest{{
		Name: "TestConformance",
		F:    func(t *testing.T) { runner.Run(t, cfg, nil) },
	}}, nil, nil)
}
