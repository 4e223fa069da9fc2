package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// jsonSchema is the part of values.schema.json these tests walk.
type jsonSchema struct {
	Ref                  string                 `json:"$ref"`
	Properties           map[string]*jsonSchema `json:"properties"`
	AdditionalProperties any                    `json:"additionalProperties"`
}

func readSchema(t *testing.T) (*jsonSchema, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s jsonSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return &s, raw
}

func readValues(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSchemaSelfContained: a remote $ref would make helm fetch it at every
// install and fail offline; only references into the file itself are
// allowed. (runHelm also points helm at a dead proxy, so a fetch fails the
// other tests.)
func TestSchemaSelfContained(t *testing.T) {
	t.Parallel()
	_, raw := readSchema(t)
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if k == "$ref" {
					if ref, _ := child.(string); !strings.HasPrefix(ref, "#/") {
						t.Errorf("%s: $ref %q is not local", path, child)
					}
				}
				walk(path+"/"+k, child)
			}
		case []any:
			for _, child := range v {
				walk(path+"[]", child)
			}
		}
	}
	walk("", doc)
}

// TestValuesDocumented: values.yaml, values.schema.json and the chart's
// README describe the same keys. Every key the schema describes field by
// field has a default in values.yaml and a row in the README's table; keys
// the schema leaves free-form (securityContext, affinity, ...) are one row.
func TestValuesDocumented(t *testing.T) {
	t.Parallel()
	schema, _ := readSchema(t)
	values := readValues(t, "values.yaml")
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, s *jsonSchema, v map[string]any)
	walk = func(prefix string, s *jsonSchema, v map[string]any) {
		for key, prop := range s.Properties {
			if prefix == "" && key == "global" {
				continue // Helm's, set by a parent chart
			}
			path := prefix + key
			val, ok := v[key]
			if !ok {
				t.Errorf("%s is in the schema but has no default in values.yaml", path)
				continue
			}
			// A shared definition ($ref, e.g. resources) is one row.
			if m, isMap := val.(map[string]any); isMap && prop.Ref == "" && len(prop.Properties) > 0 && prop.AdditionalProperties == false {
				walk(path+".", prop, m)
				continue
			}
			row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(path) + "` \\|[^|]*\\| ([^|]*) \\|").FindStringSubmatch(string(readme))
			if row == nil {
				t.Errorf("README.md has no row for `%s`", path)
				continue
			}
			// A default in backticks is the literal default; prose (for
			// objects) is not checked.
			if def, ok := strings.CutPrefix(row[1], "`"); ok {
				if want := readmeDefault(val); strings.TrimSuffix(def, "`") != want {
					t.Errorf("README.md gives `%s` the default %s, values.yaml `%s`", path, row[1], want)
				}
			}
		}
		for key := range v {
			if _, ok := s.Properties[key]; !ok {
				t.Errorf("%s%s is in values.yaml but not in the schema", prefix, key)
			}
		}
	}
	walk("", schema, values)
}

// TestProductionValuesCoverTheIssue: values-production.yaml keeps what a
// production install needs (and what the issue asked for).
func TestProductionValuesCoverTheIssue(t *testing.T) {
	t.Parallel()
	v := readValues(t, "values-production.yaml")
	get := func(path string) any {
		var cur any = v
		for _, k := range strings.Split(path, ".") {
			m, _ := cur.(map[string]any)
			cur = m[k]
		}
		return cur
	}
	for path, want := range map[string]any{
		"replicaCount":                3.0,
		"podDisruptionBudget.enabled": true,
		"autoscaling.enabled":         true,
		"serviceMonitor.enabled":      true,
		"prometheusRule.enabled":      true,
		"grafanaDashboard.enabled":    true,
		"networkPolicy.enabled":       true,
		"riverui.enabled":             true,
	} {
		if got := get(path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	for _, path := range []string{"database.existingSecret", "migrations.existingSecret", "riverui.existingSecret", "resources.requests.memory", "resources.limits.memory"} {
		if s, _ := get(path).(string); s == "" {
			t.Errorf("%s is not set", path)
		}
	}
	for _, path := range []string{"database.url", "migrations.databaseUrl", "riverui.password"} {
		if get(path) != nil {
			t.Errorf("%s is set: production credentials belong in existing Secrets", path)
		}
	}
	if !slices.Contains([]any{nil, false}, get("riverui.allowUnauthenticated")) {
		t.Errorf("production River UI allows unauthenticated access")
	}
}

// readmeDefault formats a default from values.yaml as the README shows it.
func readmeDefault(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if v == "" {
			return `""`
		}
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		if len(v) == 0 {
			return "[]"
		}
	case map[string]any:
		if len(v) == 0 {
			return "{}"
		}
	}
	return fmt.Sprint(v)
}
