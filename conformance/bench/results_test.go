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

func TestTableAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "RESULTS.md")
	tab := Table{Title: "x", Columns: []string{"a", "b"}, Rows: [][]string{{"1", "2"}}}
	if err := tab.Append(path); err != nil {
		t.Fatal(err)
	}
	if err := tab.Append(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Count(s, "| 1 | 2 |") != 2 || !strings.Contains(s, "| a | b |\n|---|---|\n") || !strings.Contains(s, "cores") {
		t.Fatalf("unexpected results file:\n%s", s)
	}
}
