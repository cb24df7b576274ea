package suite

import (
	"fmt"
	"os"
	"slices"
	"time"

	"sigs.k8s.io/yaml"
)

// Report is the YAML a run writes (shaped like Gateway API's ConformanceReport).
type Report struct {
	APIVersion     string          `json:"apiVersion"`
	Kind           string          `json:"kind"`
	Date           string          `json:"date"`
	Implementation Implementation  `json:"implementation"`
	Mode           Mode            `json:"mode"`
	Environment    Environment     `json:"environment"`
	Profiles       []ProfileReport `json:"profiles"`
}

// Implementation names what was tested.
type Implementation struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Environment describes where it ran.
type Environment struct {
	Kubernetes string `json:"kubernetes"`
	Router     string `json:"router"`
	Kernel     string `json:"kernel"`
	Setup      string `json:"setup"`
}

// ProfileReport is the result of one profile.
type ProfileReport struct {
	Name string `json:"name"`
	// Result is "success", "partial" (a core test skipped) or "failure".
	Result   string      `json:"result"`
	Core     Tally       `json:"core"`
	Extended Tally       `json:"extended"`
	Took     string      `json:"took"`
	Features []Feature   `json:"supportedFeatures,omitempty"`
	Skipped  []SkipEntry `json:"skippedReasons,omitempty"`
}

// Tally counts results and names the tests that did not pass.
type Tally struct {
	Passed      int      `json:"passed"`
	Failed      int      `json:"failed"`
	Skipped     int      `json:"skipped"`
	FailedTests []string `json:"failedTests,omitempty"`
	SkipTests   []string `json:"skippedTests,omitempty"`
}

// SkipEntry says why a test was skipped.
type SkipEntry struct {
	Test   string `json:"test"`
	Reason string `json:"reason"`
}

// BuildReport folds results into a report.
func BuildReport(impl Implementation, mode Mode, env Environment, supported []Feature, results []Result) Report {
	rep := Report{APIVersion: "conformance.bgplb.io/v1alpha1", Kind: "ConformanceReport",
		Date: time.Now().UTC().Format(time.RFC3339), Implementation: impl, Mode: mode, Environment: env}
	for _, p := range Profiles {
		pr := ProfileReport{Name: p.Name}
		var took time.Duration
		any := false
		for _, r := range results {
			if r.Test.Profile != p.Name {
				continue
			}
			any = true
			took += r.Took
			tally := &pr.Core
			if r.Test.Extended() {
				tally = &pr.Extended
			}
			switch r.Outcome {
			case "passed":
				tally.Passed++
			case "failed":
				tally.Failed++
				tally.FailedTests = append(tally.FailedTests, r.Test.ShortName)
			default:
				tally.Skipped++
				tally.SkipTests = append(tally.SkipTests, r.Test.ShortName)
				pr.Skipped = append(pr.Skipped, SkipEntry{Test: r.Test.ShortName, Reason: r.Reason})
			}
		}
		if !any {
			continue
		}
		for _, f := range append(append([]Feature{}, p.Core...), p.Extended...) {
			if slices.Contains(supported, f) && !slices.Contains(pr.Features, f) {
				pr.Features = append(pr.Features, f)
			}
		}
		switch {
		case pr.Core.Failed > 0 || pr.Extended.Failed > 0:
			pr.Result = "failure"
		case pr.Core.Skipped > 0:
			pr.Result = "partial"
		default:
			pr.Result = "success"
		}
		pr.Took = took.Round(time.Second).String()
		rep.Profiles = append(rep.Profiles, pr)
	}
	return rep
}

// Write writes the report as YAML to path.
func (r Report) Write(path string) error {
	b, err := yaml.Marshal(r)
	if err != nil {
		return fmt.Errorf("marshal conformance report: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("write conformance report %s: %w", path, err)
	}
	return nil
}
