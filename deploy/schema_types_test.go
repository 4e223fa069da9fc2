package deploy

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestSchemaFollowsKubernetesTypes: the schema describes the Kubernetes
// objects values pass through (extraEnv, envFrom, extraVolumes, ...) field
// by field, so that a misspelt field fails at install instead of being
// dropped. Its fields must be exactly those of the Kubernetes types the
// tests decode into, or a new Kubernetes field would be refused.
func TestSchemaFollowsKubernetesTypes(t *testing.T) {
	t.Parallel()
	_, raw := readSchema(t)
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string // slash-separated path in the schema
		typ  any
	}{
		{"definitions/envVar", corev1.EnvVar{}},
		{"definitions/envVar/properties/valueFrom", corev1.EnvVarSource{}},
		{"definitions/envFromSource", corev1.EnvFromSource{}},
		{"definitions/volumeMount", corev1.VolumeMount{}},
		{"properties/extraVolumes/items", corev1.Volume{}},
		{"properties/topologySpreadConstraints/items", corev1.TopologySpreadConstraint{}},
	} {
		node := any(doc)
		for _, k := range strings.Split(tc.path, "/") {
			m, _ := node.(map[string]any)
			node = m[k]
		}
		m, _ := node.(map[string]any)
		props, _ := m["properties"].(map[string]any)
		if props == nil || m["additionalProperties"] != false {
			t.Errorf("%s: not a closed object in the schema", tc.path)
			continue
		}
		var got []string
		for k := range props {
			got = append(got, k)
		}
		slices.Sort(got)
		if want := jsonFields(reflect.TypeOf(tc.typ)); !slices.Equal(got, want) {
			t.Errorf("%s: schema fields %v, %T has %v", tc.path, got, tc.typ, want)
		}
	}
}

// jsonFields lists a struct's JSON field names, inline structs expanded.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") || (f.Anonymous && name == "") {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
