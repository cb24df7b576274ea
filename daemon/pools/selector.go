package pools

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Selector returns sel as a labels.Selector; nil selects everything. The error is
// metav1.LabelSelectorAsSelector's.
func Selector(sel *metav1.LabelSelector) (labels.Selector, error) {
	if sel == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(sel)
}

// Matches reports whether sel matches the label set ls; a nil or empty selector matches
// everything.
func Matches(sel *metav1.LabelSelector, ls map[string]string) (bool, error) {
	s, err := Selector(sel)
	if err != nil {
		return false, fmt.Errorf("parse label selector: %w", err)
	}
	return s.Matches(labels.Set(ls)), nil
}

// SelectsAll reports whether sel is absent or empty (selects every object).
func SelectsAll(sel *metav1.LabelSelector) bool {
	return sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0)
}
