//go:build bench

package bench

import (
	"flag"
	"testing"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	"github.com/bgplb/bgplb/conformance/suite"
)

var (
	resultsPath = flag.String("bench.results", "RESULTS.md", "Markdown file the result tables are appended to")
	labDirFlag  = flag.String("bench.lab-dir", "/run/"+lab.Prefix+"-lab-bench", "lab state directory (default from $BGPLB_LAB_PREFIX)")
)

// benchLab brings up a fresh 3-node lab with bgplbd and the base BGP configuration
// and tears it down when the test ends.
func benchLab(t *testing.T) (*lab.Lab, *suite.Suite) {
	t.Helper()
	return labsuite.Start(t, *labDirFlag, false, nil)
}
