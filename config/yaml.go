package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits on what aliases can make of a file: an alias may refer to its own
// ancestor, and nested aliases expand exponentially ("billion laughs"), as
// do merge keys and aliases of long strings used many times.
//
// Reading is counted (see expand) rather than the file's size, as the cost
// is in the reading: each use of an alias reads the value it names again,
// building new maps and lists for args and new messages that quote it. A
// file read once, without aliases, costs at most twice its own size (an
// args mapping is read as a value and then as pairs). So the budget grows
// with the file: a plain schedule of any number of tasks loads, while what
// aliases can add is bounded by a multiple of the file, which the parser has
// already held in memory, and a small file that expands exponentially stops
// after expandFloor reads, in milliseconds and megabytes. The floor leaves
// room for small files that anchor shared settings; the ratio, for large
// ones that merge defaults (<<: *defaults) into each task and share their
// args, which reads three or four times the file.
const (
	maxDepth    = 64
	expandFloor = 100_000
	expandRatio = 10
	// scalarBytes: a scalar costs one read per this many bytes more, as
	// its text is scanned, and may be quoted in messages, at each use.
	scalarBytes = 32
)

// entry is one key: value pair of a mapping; key is nil for a document root.
type entry struct{ key, value *yaml.Node }

func (e entry) line() int {
	switch {
	case e.key != nil:
		return e.key.Line
	case e.value != nil:
		return e.value.Line
	}
	return 0
}

// lineOr returns e's line, or def when e is absent.
func (e entry) lineOr(def int) int {
	if l := e.line(); l > 0 {
		return l
	}
	return def
}

// present reports whether e was given a value other than null.
func (e entry) present() bool { return !isNull(resolve(e.value)) }

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names the kind of n for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

// pairs returns the entries of mapping n, with merge keys ("<<: *anchor")
// expanded; keys written in n win over merged ones, as YAML specifies. It
// reports keys that are written twice and keys that are not plain values.
func (d *decoder) pairs(n *yaml.Node, depth int) []entry {
	if depth > maxDepth {
		d.giveUp(n.Line, "merge keys (<<) nested more than %d levels deep (does a mapping merge itself?)", maxDepth)
	}
	keys := 0
	for i := 0; i < len(n.Content); i += 2 {
		keys += cost(resolve(n.Content[i]))
	}
	if !d.expand(n, 1+keys) {
		return nil
	}
	var own, merged []entry
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			merged = append(merged, d.merge(k, resolve(v), depth)...)
		case k.Kind != yaml.ScalarNode:
			d.problem(k.Line, "a key must be a plain value, not %s", describe(resolve(k)))
		case first[k.Value] > 0:
			d.problem(k.Line, "%q is set twice (first at line %d)", k.Value, first[k.Value])
		default:
			first[k.Value] = k.Line
			own = append(own, entry{k, v})
		}
	}
	for _, e := range merged {
		if _, ok := first[e.key.Value]; !ok {
			first[e.key.Value] = e.key.Line
			own = append(own, e)
		}
	}
	return own
}

// merge returns the entries that "<<: v" brings in. As YAML specifies, v is
// a mapping or a list of mappings; earlier mappings in the list win.
func (d *decoder) merge(k, v *yaml.Node, depth int) []entry {
	maps := []*yaml.Node{v}
	if v != nil && v.Kind == yaml.SequenceNode {
		maps = make([]*yaml.Node, len(v.Content))
		for i, m := range v.Content {
			maps[i] = resolve(m)
		}
	}
	var all []entry
	seen := map[string]bool{}
	for _, m := range maps {
		if m == nil || m.Kind != yaml.MappingNode {
			d.problem(k.Line, "<< (merge) needs a mapping or a list of mappings")
			return nil
		}
		for _, e := range d.pairs(m, depth+1) {
			if !seen[e.key.Value] {
				seen[e.key.Value] = true
				all = append(all, e)
			}
		}
	}
	return all
}

// fields returns the fields of the mapping in e by name, reporting a value
// that is not a mapping and fields not in known. what names the mapping in
// messages ("" at the top level). A null value has no fields.
func (d *decoder) fields(e entry, what string, known []string) map[string]entry {
	n := resolve(e.value)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		where := what + ":"
		if what == "" {
			where = "top level:"
		}
		d.problem(e.line(), "%s expected a mapping of %s, got %s", where, strings.Join(known, ", "), describe(n))
		return nil
	}
	f := map[string]entry{}
	for _, p := range d.pairs(n, 0) {
		name := p.key.Value
		if slices.Contains(known, name) {
			f[name] = p
			continue
		}
		in := ""
		if what != "" {
			in = " in " + what
		}
		hint := ""
		if s := closest(name, known); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.problem(p.key.Line, "unknown field %q%s%s; valid fields: %s", name, in, hint, strings.Join(known, ", "))
	}
	return f
}

// str reads a string setting; null or absent gives "". ok is false when
// the value is not a scalar, which is reported.
func (d *decoder) str(e entry, name string) (s string, ok bool) {
	n := resolve(e.value)
	switch {
	case isNull(n):
		return "", true
	case n.Kind != yaml.ScalarNode:
		d.problem(e.line(), "%s: expected a string, got %s", name, describe(n))
		return "", false
	}
	d.expand(n, cost(n)) // past the limit, giveUp drops what follows
	return n.Value, true
}

// duration reads a duration setting. set is false when it is absent, null
// or invalid (which is reported).
func (d *decoder) duration(e entry, name string) (v time.Duration, set bool) {
	n := resolve(e.value)
	if isNull(n) {
		return 0, false
	}
	const form = `use a number with a unit, like "30s" or "1m30s"`
	d.expand(n, cost(n))
	if n.Kind != yaml.ScalarNode {
		d.problem(e.line(), "%s: expected a duration (%s), got %s", name, form, describe(n))
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.problem(e.line(), "%s: invalid duration %q: %s", name, n.Value, form)
		return 0, false
	}
	return v, true
}

// nonNegative reads a duration that must not be negative.
func (d *decoder) nonNegative(e entry, name string) (time.Duration, bool) {
	v, set := d.duration(e, name)
	if set && v < 0 {
		d.problem(e.line(), "%s must not be negative, got %v", name, v)
		return 0, false
	}
	return v, set
}

// boolean reads a true/false setting. YAML 1.1 spellings like "yes" are
// refused rather than read as strings.
func (d *decoder) boolean(e entry, name string) (v, set bool) {
	n := resolve(e.value)
	if isNull(n) {
		return false, false
	}
	d.expand(n, cost(n))
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
		d.problem(e.line(), "%s: expected true or false, got %s", name, describe(n))
		return false, false
	}
	return v, true
}

// args converts a task's args to the values tasks receive: map[string]any,
// []any, string, int, float64, bool and nil. Timestamps stay strings, so an
// argv entry like 2024-01-01 is passed as written.
func (d *decoder) args(e entry) (map[string]any, bool) {
	n := resolve(e.value)
	if isNull(n) {
		return map[string]any{}, true
	}
	if n.Kind != yaml.MappingNode {
		d.problem(e.line(), "args: expected a mapping of names to values, got %s", describe(n))
		return map[string]any{}, false
	}
	before := len(d.problems)
	v, err := d.value(n, "args", 0)
	if err != nil {
		if err != errTooBig { // which expand reported
			d.problem(e.line(), "args: %v", err)
		}
		return map[string]any{}, false
	}
	return v.(map[string]any), len(d.problems) == before
}

var errTooDeep = fmt.Errorf("nested more than %d levels deep (does an alias refer to a value that contains it?)", maxDepth)

// value converts n; an error means a limit was hit and the conversion given up.
func (d *decoder) value(n *yaml.Node, path string, depth int) (any, error) {
	n = resolve(n)
	if depth > maxDepth {
		return nil, errTooDeep
	}
	if !d.expand(n, cost(n)) {
		return nil, errTooBig
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, p := range d.pairs(n, 0) {
			v, err := d.value(p.value, path+"."+p.key.Value, depth+1)
			if err != nil {
				return nil, err
			}
			m[p.key.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, err := d.value(c, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			d.problem(n.Line, "%s: cannot read %q as %s", path, n.Value, n.ShortTag())
		}
		return v, nil
	}
	return n.Value, nil
}

var errTooBig = fmt.Errorf("aliases make the file too big to read: each use of an alias (*name) or merge key (<<: *name) reads the value it names again, and a file may read at most %d values plus %d times its own; use fewer aliases, or anchor smaller values", expandFloor, expandRatio)

// expand counts the cost of reading n; false means that decoding must stop.
// d.expanded counts up from minus the budget, which is set at the first
// read: that of the document's root, as config reads the top-level mapping
// before anything else. (Were it of a part of the file, the budget would
// only be smaller.)
func (d *decoder) expand(n *yaml.Node, c int) bool {
	if d.stopped {
		return false
	}
	if d.expanded == 0 {
		d.expanded = -(expandFloor + expandRatio*size(n))
	}
	if d.expanded += c; d.expanded >= 0 {
		d.giveUp(n.Line, "%v", errTooBig)
	}
	return !d.stopped
}

// cost is what reading n once counts: one, and one more per scalarBytes of
// a scalar's text.
func cost(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return 1 + len(n.Value)/scalarBytes
}

// size is the cost of reading n and what it holds once each, not following
// aliases: the file's own size, for the root.
func size(n *yaml.Node) int {
	c := cost(n)
	for _, m := range n.Content {
		c += size(m)
	}
	return c
}

// giveUp reports a problem that ends decoding, as what follows would only
// be problems caused by it.
func (d *decoder) giveUp(line int, format string, args ...any) {
	if !d.stopped {
		d.problem(line, format, args...)
		d.stopped, d.kept = true, len(d.problems)
	}
}

// closest returns the candidate within two edits of s, if any, for "did you
// mean" hints.
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if dist := editDistance(s, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return len(a) + len(b) // not a typo of a field name; spare the work
	}
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
