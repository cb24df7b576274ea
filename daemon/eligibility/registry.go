package eligibility

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// PluginFactory builds a plugin from its (possibly empty) JSON arguments. It must validate
// args and return an error naming the bad field.
type PluginFactory func(ctx context.Context, args json.RawMessage, h Handle) (Plugin, error)

// Registry maps plugin names to factories (name -> factory).
type Registry map[string]PluginFactory

// Register adds a factory; registering a name twice is an error.
func (r Registry) Register(name string, factory PluginFactory) error {
	if _, ok := r[name]; ok {
		return fmt.Errorf("register plugin %q: a plugin with this name already exists", name)
	}
	r[name] = factory
	return nil
}

// Unregister removes a factory; removing an unknown name is an error.
func (r Registry) Unregister(name string) error {
	if _, ok := r[name]; !ok {
		return fmt.Errorf("unregister plugin %q: no plugin with this name exists", name)
	}
	delete(r, name)
	return nil
}

// Merge adds every factory of in; a name present in both is an error.
func (r Registry) Merge(in Registry) error {
	for name, f := range in {
		if err := r.Register(name, f); err != nil {
			return err
		}
	}
	return nil
}

// DecodeArgs decodes plugin args strictly (unknown fields are errors) into out. Empty or
// null args leave out untouched.
func DecodeArgs(args json.RawMessage, out any) error {
	trimmed := bytes.TrimSpace(args)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode args: %w", err)
	}
	return nil
}

// NoArgs returns an error when args carry anything but an empty object or null; for
// plugins that take no arguments.
func NoArgs(args json.RawMessage) error {
	var m map[string]json.RawMessage
	if err := DecodeArgs(args, &m); err != nil {
		return err
	}
	if len(m) > 0 {
		return fmt.Errorf("decode args: plugin takes no arguments")
	}
	return nil
}
