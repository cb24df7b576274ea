package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Machine describes where a benchmark ran.
func Machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					cpu = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	kernel := "unknown kernel"
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		kernel = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d cores (%s), Linux %s, %s", runtime.NumCPU(), cpu, kernel, runtime.Version())
}

// Percentile returns the p-th percentile (0..100) of ds by nearest rank.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s))+0.5) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(s) {
		rank = len(s) - 1
	}
	return s[rank]
}

// Table is one Markdown table of results.
type Table struct {
	Title   string
	Note    string
	Columns []string
	Rows    [][]string
}

// Write puts t, headed by the date and the machine, into the results file at path:
// it replaces the section with the same title (from its "### " heading to the next one)
// or, when there is none, adds it at the end. The file holds the current table of each
// benchmark; earlier runs live in git's history.
func (t Table) Write(path string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n%s — %s\n\n", t.Title, time.Now().UTC().Format("2006-01-02 15:04 MST"), Machine())
	if t.Note != "" {
		fmt.Fprintf(&b, "%s\n\n", t.Note)
	}
	fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(t.Columns, " | "), strings.Repeat("---|", len(t.Columns)))
	for _, r := range t.Rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read results %s: %w", path, err)
	}
	out := replaceSection(string(old), t.Title, b.String())
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return fmt.Errorf("write results %s: %w", path, err)
	}
	return nil
}

// replaceSection returns doc with the "### title" section replaced by section, or
// with section appended when doc has no such heading. A section ends where the next
// "### " heading starts; text after a table inside the old section goes with it.
func replaceSection(doc, title, section string) string {
	heading := "### " + title + "\n"
	at := -1
	if strings.HasPrefix(doc, heading) {
		at = 0
	} else if i := strings.Index(doc, "\n"+heading); i >= 0 {
		at = i + 1
	}
	if at < 0 {
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			doc = strings.TrimRight(doc, "\n") + "\n\n"
		}
		return doc + section
	}
	end := len(doc)
	if i := strings.Index(doc[at+len(heading):], "\n### "); i >= 0 {
		end = at + len(heading) + i + 1
	}
	rest := doc[end:]
	if rest != "" {
		section += "\n"
	}
	return doc[:at] + section + rest
}
