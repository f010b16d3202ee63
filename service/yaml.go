package service

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// decodeYAML decodes raw into v (a pointer to a struct), walking the YAML
// tree beside the Go type so that an unknown field or a bad value is
// reported with its path ("tiers.memory.max_bytes") and line.
func decodeYAML(raw []byte, v any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if doc.Kind == 0 { // empty file
		return nil
	}
	return decodeNode("", &doc, reflect.ValueOf(v).Elem())
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func decodeNode(path string, n *yaml.Node, v reflect.Value) error {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		} else {
			n = n.Alias
		}
	}
	where := func() string {
		if path == "" {
			return fmt.Sprintf("line %d", n.Line)
		}
		return fmt.Sprintf("%s (line %d)", path, n.Line)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeNode(path, n, v.Elem())
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrConfig, where(), err)
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%w: %s: expected a mapping", ErrConfig, where())
		}
		fields := map[string]int{}
		for i := range v.NumField() {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				fields[tag] = i
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := join(path, key)
			idx, ok := fields[key]
			if !ok {
				return fmt.Errorf("%w: %s (line %d): unknown field", ErrConfig, p, n.Content[i].Line)
			}
			if seen[key] {
				return fmt.Errorf("%w: %s (line %d): set twice", ErrConfig, p, n.Content[i].Line)
			}
			seen[key] = true
			if err := decodeNode(p, n.Content[i+1], v.Field(idx)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%w: %s: expected a list", ErrConfig, where())
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if err := decodeNode(fmt.Sprintf("%s[%d]", path, i), c, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	default:
		if n.Kind != yaml.ScalarNode {
			return fmt.Errorf("%w: %s: expected a single value", ErrConfig, where())
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return fmt.Errorf("%w: %s: %q is not a valid %s", ErrConfig, where(), n.Value, v.Kind())
		}
		return nil
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Size is a byte count written as a plain number or with a unit: "8MB"
// (decimal: 8,000,000) or "8MiB" (binary: 8,388,608). Units are B, KB, MB,
// GB, TB and KiB, MiB, GiB, TiB, case-insensitive.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseSize parses a Size.
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.ContainsAny(t, "xXpPnNiI_") {
		return 0, fmt.Errorf("%q is not a size (e.g. 512KiB, 8MB, 1GiB)", s)
	}
	f *= mult
	if f < 0 || f > math.MaxInt64/2 || f != math.Trunc(f) {
		return 0, fmt.Errorf("%q is not a whole, non-negative number of bytes in range", s)
	}
	return Size(f), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String formats the size in binary units where exact.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(s)/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}

// Duration is a time.Duration written as a Go duration ("10s", "1h30m").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 500ms, 10s, 720h)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// String formats the duration as Go does.
func (d Duration) String() string { return time.Duration(d).String() }
