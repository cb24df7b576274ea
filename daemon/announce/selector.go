package announce

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

type labelSelector = metav1.LabelSelector

func asSelector(sel *metav1.LabelSelector) (labels.Selector, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("parse label selector: %w", err)
	}
	return s, nil
}

// SelectorMatches reports whether sel matches the label set ls; a nil or empty selector
// matches everything.
func SelectorMatches(sel *metav1.LabelSelector, ls map[string]string) (bool, error) {
	return selectorMatches(sel, labels.Set(ls))
}
