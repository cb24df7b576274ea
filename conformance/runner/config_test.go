package runner

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgplb/bgplb/conformance/router"
)

func parseFlags(t *testing.T, args ...string) *Config {
	t.Helper()
	fs := flag.NewFlagSet("bgplb-conformance", flag.ContinueOnError)
	c := AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRouterOriginateFile: --router-originate-file gives the BIRD adapter a file it
// replaces through --router-exec (here: this machine), and is refused with FRR.
func TestRouterOriginateFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "originate.conf")
	c := parseFlags(t, "--router", "bird", "--router-originate-file", file)
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	r, err := c.RouterAdapter()
	if err != nil {
		t.Fatal(err)
	}
	b, ok := r.(router.BIRD)
	if !ok || b.CanOriginate() != nil {
		t.Fatalf("adapter %T cannot originate: %v", r, b.CanOriginate())
	}
	if err := b.WriteFile(context.Background(), b.OriginateConf, []byte("# test\n")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != "# test\n" {
		t.Errorf("file %q (%v), want what WriteFile wrote", got, err)
	}

	// Without the flag the BIRD adapter says why it cannot originate.
	r, err = parseFlags(t, "--router", "bird").RouterAdapter()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.(router.Originator).CanOriginate(); !errors.Is(err, router.ErrCannotOriginate) {
		t.Errorf("CanOriginate without --router-originate-file: %v", err)
	}

	err = parseFlags(t, "--router", "frr", "--router-originate-file", file).validate()
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "--router-originate-file") {
		t.Errorf("validate with frr: %v, want a configuration error naming the flag", err)
	}
}
