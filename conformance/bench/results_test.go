package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
}

func TestTableWriteReplacesItsSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	if err := os.WriteFile(path, []byte("# Results\n\nintro\n\n### y\n\nold y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := Table{Title: "x", Columns: []string{"a", "b"}, Rows: [][]string{{"1", "2"}}}
	if err := first.Write(path); err != nil {
		t.Fatal(err)
	}
	second := Table{Title: "x", Columns: []string{"a", "b"}, Rows: [][]string{{"3", "4"}}}
	if err := second.Write(path); err != nil {
		t.Fatal(err)
	}
	y := Table{Title: "y", Columns: []string{"c"}, Rows: [][]string{{"5"}}}
	if err := y.Write(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"# Results\n\nintro\n\n### y\n", "| 3 | 4 |", "| 5 |", "| a | b |\n|---|---|\n", "cores"} {
		if !strings.Contains(s, want) {
			t.Errorf("results file lacks %q:\n%s", want, s)
		}
	}
	for _, gone := range []string{"| 1 | 2 |", "old y"} {
		if strings.Contains(s, gone) {
			t.Errorf("results file still holds %q:\n%s", gone, s)
		}
	}
	if n := strings.Count(s, "### x\n"); n != 1 {
		t.Errorf("%d sections titled x, want 1:\n%s", n, s)
	}
	if !strings.HasPrefix(s[strings.Index(s, "### y"):], "### y\n") || strings.Index(s, "### y") > strings.Index(s, "### x") {
		t.Errorf("section y moved:\n%s", s)
	}
}

func TestParseCPUTimes(t *testing.T) {
	a, err := ParseCPUTimes("cpu  100 5 50 1000 10 3 2 400 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if err != nil {
		t.Fatal(err)
	}
	if a.Busy != 160 || a.Total != 1170 {
		t.Fatalf("got %+v, want busy 160 total 1170", a)
	}
	b, err := ParseCPUTimes("cpu  150 5 50 1950 10 3 2 900 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if f := BusyFraction(a, b); f < 0.0499 || f > 0.0501 {
		t.Fatalf("busy fraction %v, want 0.05 (steal excluded)", f)
	}
	if f := BusyFraction(b, a); f != 0 {
		t.Fatalf("busy fraction backwards %v, want 0", f)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 x 4 5 6 7"} {
		if _, err := ParseCPUTimes(bad); err == nil {
			t.Errorf("ParseCPUTimes(%q) succeeded", bad)
		}
	}
}
