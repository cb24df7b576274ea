package manifests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/model"
	"k8s.io/apimachinery/pkg/util/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"
)

// TestChartCRDsIdentical checks that the Helm chart ships exactly the generated CRDs
// (hack/update-codegen.sh copies them; `go generate ./...` keeps them in step).
func TestChartCRDsIdentical(t *testing.T) {
	base, err := filepath.Glob("base/crds/bgplb.io_*.yaml")
	if err != nil || len(base) == 0 {
		t.Fatalf("no CRDs in base/crds: %v", err)
	}
	chart, err := filepath.Glob("charts/bgplb/crds/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(chart) != len(base) {
		t.Fatalf("chart has %d CRD files %v, base has %d %v: run go generate ./daemon/apis/...", len(chart), chart, len(base), base)
	}
	for _, b := range base {
		want, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		c := filepath.Join("charts/bgplb/crds", filepath.Base(b))
		got, err := os.ReadFile(c)
		if err != nil {
			t.Fatalf("%s: %v (run go generate ./daemon/apis/...)", c, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run go generate ./daemon/apis/...", c, b)
		}
	}
}

// minKubernetes is the oldest Kubernetes release that accepts the CRDs, as the README's
// compatibility table says. A kube-apiserver of release 1.N compiles new CEL rules with
// the libraries of 1.N-1 (its minimum compatibility version), so 1.31 is the first to
// accept the IP and CIDR functions (isIP, ip(), isCIDR, cidr()) that the CEL library
// gained in 1.30.
var (
	minKubernetes         = version.MajorMinor(1, 31)
	minCompatibility      = version.MajorMinor(1, 30) // minKubernetes - 1
	belowMinCompatibility = version.MajorMinor(1, 29) // what 1.30 compiles new rules with
)

// TestCRDRulesNeedKubernetes131 compiles every x-kubernetes-validations rule of the
// CRDs the way kube-apiserver does when a CRD is created: every rule must compile with
// the CEL environment of the documented minimum release (1.31), and at least one must
// not compile one release earlier (else the documented minimum is too high).
func TestCRDRulesNeedKubernetes131(t *testing.T) {
	rules, failsBelow := 0, []string{}
	for _, f := range crdFiles(t) {
		crd := readCRD(t, f)
		for _, v := range crd.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensionsinternal.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				t.Fatalf("%s %s: convert schema: %v", crd.Name, v.Name, err)
			}
			s, err := schema.NewStructural(&internal)
			if err != nil {
				t.Fatalf("%s %s: structural schema: %v", crd.Name, v.Name, err)
			}
			walkStructural(s, true, crd.Name+"/"+v.Name, func(path string, s *schema.Structural, root bool) {
				if len(s.XValidations) == 0 {
					return
				}
				rules += len(s.XValidations)
				if errs := compileRules(s, root, minCompatibility); len(errs) > 0 {
					t.Errorf("%s: a rule needs a Kubernetes release newer than %s (update the README's compatibility table and minKubernetes): %s",
						path, minKubernetes, strings.Join(errs, "; "))
				}
				if errs := compileRules(s, root, belowMinCompatibility); len(errs) > 0 {
					failsBelow = append(failsBelow, path+": "+errs[0])
				}
			})
		}
	}
	if rules == 0 {
		t.Fatal("found no x-kubernetes-validations rules in the CRDs")
	}
	if len(failsBelow) == 0 {
		t.Errorf("all %d rules also compile for Kubernetes 1.%d: the documented minimum %s is too high", rules, minKubernetes.Minor()-1, minKubernetes)
	}
	t.Logf("%d rules compile for Kubernetes %s; %d schema(s) with rules need it, e.g. %s", rules, minKubernetes, len(failsBelow), firstOr(failsBelow, "-"))
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// compileRules compiles the rules of one schema node for new expressions at the given
// CEL compatibility version and returns the errors.
func compileRules(s *schema.Structural, root bool, compat *version.Version) []string {
	results, err := cel.Compile(s, model.SchemaDeclType(s, root), celconfig.PerCallLimit,
		environment.MustBaseEnvSet(compat), cel.NewExpressionsEnvLoader())
	if err != nil {
		return []string{err.Error()}
	}
	var errs []string
	for i, r := range results {
		if r.Error != nil {
			errs = append(errs, s.XValidations[i].Rule+": "+r.Error.Error())
		}
	}
	return errs
}

// walkStructural calls fn for s and every schema below it.
func walkStructural(s *schema.Structural, root bool, path string, fn func(string, *schema.Structural, bool)) {
	if s == nil {
		return
	}
	fn(path, s, root)
	for name, p := range s.Properties {
		walkStructural(&p, false, path+"."+name, fn)
	}
	if s.Items != nil {
		walkStructural(s.Items, false, path+"[]", fn)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Structural != nil {
		walkStructural(s.AdditionalProperties.Structural, false, path+"{}", fn)
	}
}

func crdFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("base/crds/bgplb.io_*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in base/crds: %v", err)
	}
	return files
}

func readCRD(t *testing.T, path string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &crd
}
