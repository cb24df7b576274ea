package eligibility

import (
	"errors"
	"fmt"
	"strings"
)

// Code is the outcome of running one plugin.
type Code int

// These are the only codes a plugin may return. Keep codes and this list in step.
const (
	// Success means the plugin accepts the Service on this node. A nil *Status is Success.
	Success Code = iota
	// Error is an internal error (bad input, a lookup failed). The evaluation is retried.
	Error
	// Ineligible means this node must not announce the Service; Reason says why.
	Ineligible
	// Skip, returned from PreFilter, means the plugin has no opinion on this Service and
	// its Filter and Score are not run. From Filter or Score it means "no opinion".
	Skip
)

var codes = []string{"Success", "Error", "Ineligible", "Skip"}

func (c Code) String() string {
	if c < 0 || int(c) >= len(codes) {
		return fmt.Sprintf("Code(%d)", int(c))
	}
	return codes[c]
}

// Reasons used by the framework itself. Plugins define their own next to their code.
const (
	// ReasonEligible is the Decision reason when the node announces.
	ReasonEligible = "Eligible"
	// ReasonPluginError is the reason of a Status built from an error.
	ReasonPluginError = "PluginError"
)

// Status is the result of a plugin call. A nil *Status means Success; every method is
// nil-safe.
type Status struct {
	code     Code
	reason   string   // stable camelCase, e.g. "NoEligibleEndpoints"
	messages []string // human-readable details
	err      error
	plugin   string
}

// NewStatus returns a Status with a stable camelCase reason and human-readable messages.
func NewStatus(code Code, reason string, messages ...string) *Status {
	return &Status{code: code, reason: reason, messages: messages}
}

// AsStatus wraps err into an Error Status. It returns nil for a nil error.
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{code: Error, reason: ReasonPluginError, messages: []string{err.Error()}, err: err}
}

// Code returns the code; Success for nil.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// Reason returns the stable camelCase reason ("" for nil).
func (s *Status) Reason() string {
	if s == nil {
		return ""
	}
	return s.reason
}

// Message joins the messages with ", ".
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.messages, ", ")
}

// Plugin returns the name of the plugin that produced the Status.
func (s *Status) Plugin() string {
	if s == nil {
		return ""
	}
	return s.plugin
}

// SetPlugin records the plugin that produced the Status. No-op on nil.
func (s *Status) SetPlugin(name string) {
	if s != nil {
		s.plugin = name
	}
}

// IsSuccess reports whether the code is Success (true for nil).
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// IsIneligible reports whether the code is Ineligible.
func (s *Status) IsIneligible() bool { return s.Code() == Ineligible }

// IsSkip reports whether the code is Skip.
func (s *Status) IsSkip() bool { return s.Code() == Skip }

// AsError returns nil for Success and Skip, the wrapped error for Error, and an error
// describing the Status otherwise.
func (s *Status) AsError() error {
	if s.IsSuccess() || s.IsSkip() {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return errors.New(s.String())
}

// String renders "Code reason: messages".
func (s *Status) String() string {
	if s == nil {
		return "Success"
	}
	out := s.code.String()
	if s.reason != "" {
		out += " " + s.reason
	}
	if m := s.Message(); m != "" {
		out += ": " + m
	}
	return out
}
