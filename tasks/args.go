package tasks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// DecodeArgs decodes args into v (a pointer to a struct or map) via a JSON
// round trip with DisallowUnknownFields, so struct tags `json:"name"` name the
// args. Errors name the offending field as args.<path> and, for an unknown
// top-level argument, list the valid ones. Validators registered with
// [WithArgs] can call it to share their Func's decoding.
func DecodeArgs(args map[string]any, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("tasks.DecodeArgs: target is %T; pass a non-nil pointer to a struct or map, e.g. &args", v)
	}
	norm, err := normalize(args, 0)
	if err != nil {
		return err
	}
	if norm == nil {
		norm = map[string]any{}
	}
	target := rv.Elem().Type()
	// Reporting unknown top-level names ourselves, rather than leaving it to
	// encoding/json, lets the error list all of them and the valid names,
	// which is what a user needs to fix a typo.
	if m, ok := norm.(map[string]any); ok {
		if err := checkStructKeys(m, target); err != nil {
			return err
		}
	}
	b, err := json.Marshal(norm)
	if err != nil {
		return fmt.Errorf("args: %w; use only strings, finite numbers, booleans, lists and maps", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return explainDecodeError(err)
	}
	return nil
}

// maxArgsDepth bounds normalize's recursion: YAML cannot express a cycle,
// but a Go caller can, and unbounded recursion would crash the process.
const maxArgsDepth = 100

// normalize copies v with every map keyed by string, because YAML decoders
// produce map[any]any for maps with non-string keys and encoding/json
// refuses those.
func normalize(v any, depth int) (any, error) {
	if depth > maxArgsDepth {
		return nil, fmt.Errorf("args: nested more than %d levels deep; flatten them", maxArgsDepth)
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	default:
		return v, nil
	}
}

// checkStructKeys reports the keys of m that no field of struct type t
// accepts. Matching is case-insensitive, as in encoding/json.
func checkStructKeys(m map[string]any, t reflect.Type) error {
	if t.Kind() != reflect.Struct {
		return nil
	}
	valid := jsonFieldNames(t, 0)
	var errs []error
	for _, k := range sortedKeys(m) {
		if !slices.ContainsFunc(valid, func(f string) bool { return strings.EqualFold(f, k) }) {
			errs = append(errs, unknownArgError(k, valid))
		}
	}
	return errors.Join(errs...)
}

// jsonFieldNames lists the names encoding/json decodes into struct type t,
// including fields promoted from embedded structs.
func jsonFieldNames(t reflect.Type, depth int) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct && depth < maxArgsDepth {
			names = append(names, jsonFieldNames(ft, depth+1)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// explainDecodeError rewrites encoding/json's errors, which speak of Go
// types, into the args' own terms.
func explainDecodeError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := "args"
		if te.Field != "" {
			path += "." + te.Field
		}
		return fmt.Errorf("%s: got %s, want %s: %w", path, jsonValueWords(te.Value), goTypeWords(te.Type), err)
	}
	if name, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
		// Nested unknown fields reach here; encoding/json does not say where
		// they are, so the message cannot either.
		name = strings.TrimSuffix(name, `"`)
		return fmt.Errorf("args: unknown nested argument %q; check the spelling of keys inside maps: %w", name, err)
	}
	return fmt.Errorf("args: %w", err)
}

func jsonValueWords(v string) string {
	switch {
	case v == "array":
		return "a list"
	case v == "object":
		return "a map"
	case v == "bool":
		return "a boolean"
	case v == "string":
		return "a string"
	case v == "number":
		return "a number"
	case strings.HasPrefix(v, "number "):
		return "the " + v
	}
	return v
}

func goTypeWords(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer (" + t.String() + ")"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a map"
	}
	return t.String()
}

func unknownArgError(name string, valid []string) error {
	if len(valid) == 0 {
		return fmt.Errorf("args.%s: unknown argument; this task type takes no args", name)
	}
	return fmt.Errorf("args.%s: unknown argument; valid arguments: %s", name, strings.Join(valid, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// The helpers below check args by hand for the built-in tasks, which need
// messages more specific than a generic decoder can give: the YAML a user
// should have written.

// checkKnown reports every key of args not in valid.
func checkKnown(args map[string]any, valid ...string) []error {
	var errs []error
	for _, k := range sortedKeys(args) {
		if !slices.Contains(valid, k) {
			errs = append(errs, unknownArgError(k, slices.Sorted(slices.Values(valid))))
		}
	}
	return errs
}

// describe names a decoded YAML value the way a user wrote it.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprintf("the number %v", v)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a map"
	}
	return fmt.Sprintf("a %T", v)
}

// scalarHint suggests quoting when a user wrote a number or boolean where a
// string belongs (YAML reads `5` and `true` as non-strings).
func scalarHint(v any) string {
	switch v.(type) {
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprintf("; quote it: \"%v\"", v)
	}
	return ""
}

// optString returns args[key] as a string; ok is false when the key is absent.
func optString(args map[string]any, key string) (s string, ok bool, err error) {
	v, present := args[key]
	if !present {
		return "", false, nil
	}
	s, isString := v.(string)
	if !isString {
		return "", true, fmt.Errorf("args.%s: got %s, want a string%s", key, describe(v), scalarHint(v))
	}
	return s, true, nil
}

// stringMap reads args[key] as a map of strings; a nil map when absent.
func stringMap(args map[string]any, key string) (map[string]string, []error) {
	v, present := args[key]
	if !present {
		return nil, nil
	}
	var m map[string]any
	switch v := v.(type) {
	case map[string]any:
		m = v
	case map[string]string:
		// A Go caller's natural type; YAML gives map[string]any.
		m = make(map[string]any, len(v))
		for k, s := range v {
			m[k] = s
		}
	case map[any]any:
		n, err := normalize(v, 0)
		if err != nil {
			return nil, []error{fmt.Errorf("args.%s: %w", key, err)}
		}
		m = n.(map[string]any)
	default:
		return nil, []error{fmt.Errorf("args.%s: got %s, want a map of strings, e.g. %s: {NAME: value}", key, describe(v), key)}
	}
	out := make(map[string]string, len(m))
	var errs []error
	for _, k := range sortedKeys(m) {
		s, ok := m[k].(string)
		if !ok {
			errs = append(errs, fmt.Errorf("args.%s.%s: got %s, want a string%s", key, k, describe(m[k]), scalarHint(m[k])))
			continue
		}
		out[k] = s
	}
	return out, errs
}

// asInt accepts the integer types YAML and JSON decoders produce, including
// a float64 with no fraction.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint:
		return int64(min(uint64(n), 1<<62)), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(min(n, 1<<62)), true
	case float32:
		return asInt(float64(n))
	case float64:
		if n != n || n < -(1<<62) || n > 1<<62 || n != float64(int64(n)) {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}
