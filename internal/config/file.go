package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// maxFileSize bounds the configuration file read into memory: a file of
// every setting is about 2 KiB, and a path mistyped to a large file should
// fail fast rather than fill the memory.
const maxFileSize = 1 << 20

// readFile reads the TOML configuration file at path: a key = value line a
// setting, with the keys named like the flags, at the top level (no
// tables). It returns the values as text, as their flags would take them,
// and every problem, in the order of the lines: a key herald does not
// know, a value that is not one of its option. known holds scratch
// options, which it sets to check the values. A file that does not parse
// as TOML gives one problem, its first syntax error.
func readFile(path string, known map[string]option) (map[string]given, []error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return nil, []error{fmt.Errorf("config file %s: herald reads TOML files (key = \"value\" lines, keys named like the flags); see docs/herald.example.toml", path)}
	}
	data, err := readBounded(path)
	if err != nil {
		return nil, []error{fmt.Errorf("config file: %w", err)}
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, []error{fmt.Errorf("%s:%d:%d: %s", path, row, col, strings.TrimPrefix(de.Error(), "toml: "))}
		}
		return nil, []error{fmt.Errorf("%s: %w", path, err)}
	}
	lines := keyLines(data)
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return lines[a] - lines[b] })

	out := make(map[string]given, len(doc))
	var errs []error
	for _, k := range keys {
		at := fmt.Sprintf("%s:%d", path, lines[k])
		o, ok := known[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown key %q%s", at, k, keyHint(k, known)))
			continue
		}
		text, err := fileText(o, doc[k])
		if err == nil {
			err = o.value.Set(text)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", at, k, err))
			continue
		}
		out[k] = given{text: text, source: "file " + at, where: at + ": " + k}
	}
	return out, errs
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes, which no configuration is", path, maxFileSize)
	}
	return data, nil
}

// keyLines returns the line of each top-level key of a TOML document that
// parses: of its key = value line, or of the first header of a table of
// that name.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue, unstable.Table, unstable.ArrayTable:
		default:
			continue
		}
		it := e.Key()
		if !it.Next() {
			continue
		}
		k := it.Node()
		name := string(k.Data)
		if _, seen := lines[name]; !seen {
			lines[name] = p.Shape(k.Raw).Start.Line
		}
	}
	return lines
}

// keyHint suggests the key that k was likely meant to be.
func keyHint(k string, known map[string]option) string {
	if dashed := strings.ReplaceAll(k, "_", "-"); dashed != k {
		if _, ok := known[dashed]; ok {
			return fmt.Sprintf(" (the keys are named like the flags: %s)", dashed)
		}
	}
	if k == "config" {
		return " (a file cannot name another)"
	}
	return " (the keys are the flags of herald serve, such as publisher-jwt-key; herald help serve lists them)"
}

// fileText turns a TOML value into the text the option's flag would take.
func fileText(o option, v any) (string, error) {
	switch o.value.(type) {
	case *durationValue:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return "", fmt.Errorf("%v is not a duration: write it as a string, like \"5s\", \"1m30s\" or \"250ms\"", v)
	case *listValue:
		if a, ok := v.([]any); ok {
			items := make([]string, len(a))
			for i, x := range a {
				s, ok := x.(string)
				if !ok || strings.ContainsAny(s, " ,\t\n") || s == "" {
					return "", fmt.Errorf("item %d, %v, is not an origin: write an array of strings, like [\"https://example.com\"]", i+1, x)
				}
				items[i] = s
			}
			return strings.Join(items, " "), nil
		}
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return "", fmt.Errorf("%v is not a whole number", v)
	case map[string]any:
		return "", errors.New("a table, where a value is wanted: the file has no tables, write key = value at the top")
	case []any:
		return "", fmt.Errorf("an array, where a single value is wanted")
	default:
		return "", fmt.Errorf("%v (a %T) is not a value this option takes", v, v)
	}
}
