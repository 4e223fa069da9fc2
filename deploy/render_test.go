package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// serviceMonitor is the part of the Prometheus Operator's CRD
// (monitoring.coreos.com/v1) that the chart uses. Decoding is strict, so a
// field the chart sets but this struct lacks fails the test: add it here only
// after checking it in the CRD.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// prometheusRule is the part of the Prometheus Operator's PrometheusRule CRD
// (monitoring.coreos.com/v1) that the chart uses, decoded as strictly as
// serviceMonitor.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// apiTypes maps apiVersion and kind to the Go type a rendered object must
// decode into. A kind missing here fails the test, so a new template cannot
// escape strict decoding.
var apiTypes = map[string]func() metav1.Object{
	"apps/v1/Deployment":                      func() metav1.Object { return &appsv1.Deployment{} },
	"v1/Service":                              func() metav1.Object { return &corev1.Service{} },
	"v1/ConfigMap":                            func() metav1.Object { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() metav1.Object { return &corev1.Secret{} },
	"v1/ServiceAccount":                       func() metav1.Object { return &corev1.ServiceAccount{} },
	"batch/v1/Job":                            func() metav1.Object { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":           func() metav1.Object { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() metav1.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() metav1.Object { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":            func() metav1.Object { return &networkingv1.Ingress{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() metav1.Object { return &serviceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() metav1.Object { return &prometheusRule{} },
}

// object is one rendered manifest, decoded.
type object struct {
	Source string // the template, from helm's "# Source:" comment
	Kind   string
	Obj    metav1.Object // *appsv1.Deployment, *corev1.Secret, ...
}

func (o object) String() string { return o.Kind + "/" + o.Obj.GetName() + " (" + o.Source + ")" }

// manifests is the output of one helm template run.
type manifests []object

var (
	documentSep = regexp.MustCompile(`(?m)^---[ \t]*$`)
	sourceLine  = regexp.MustCompile(`(?m)^# Source: (.+)$`)
)

// decodeStrict decodes one YAML document into obj the way the API server's
// strict field validation does: duplicate keys (YAMLToJSONStrict), unknown
// fields and fields whose case differs from the API's are errors.
// sigs.k8s.io/json is used rather than encoding/json's DisallowUnknownFields
// because encoding/json matches keys case-insensitively, so "containerport"
// would pass it, while the API server would drop or reject it.
func decodeStrict(doc []byte, obj any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// decodeManifests splits helm template's output and decodes every object
// strictly into its API type.
func decodeManifests(out string) (manifests, error) {
	var ms manifests
	var errs []error
	for _, doc := range documentSep.Split(out, -1) {
		source := ""
		if m := sourceLine.FindStringSubmatch(doc); m != nil {
			source = m[1]
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
			continue
		}
		if tm.APIVersion == "" && tm.Kind == "" {
			if strings.TrimSpace(sourceLine.ReplaceAllString(doc, "")) != "" {
				errs = append(errs, fmt.Errorf("%s: a document without apiVersion and kind", source))
			}
			continue
		}
		newObj, ok := apiTypes[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %s %s has no Go type in apiTypes", source, tm.APIVersion, tm.Kind))
			continue
		}
		obj := newObj()
		if err := decodeStrict([]byte(doc), obj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s does not decode strictly: %w", source, tm.Kind, err))
			continue
		}
		ms = append(ms, object{Source: source, Kind: tm.Kind, Obj: obj})
	}
	return ms, errors.Join(errs...)
}

// render runs helm template on the chart with the given values files
// (relative to the chart) and inline YAML values (applied last), and decodes
// the result.
func render(t *testing.T, files []string, values string) (manifests, error) {
	t.Helper()
	args := append([]string{"template", "factos", chartDir, "--namespace", "factos"}, valuesArgs(t, files, values)...)
	out, err := runHelm(t, args...)
	if err != nil {
		return nil, err
	}
	return decodeManifests(out)
}

// valuesArgs gives helm the values files (relative to the chart), then the
// inline YAML values, which win.
func valuesArgs(t *testing.T, files []string, values string) []string {
	t.Helper()
	var args []string
	for _, f := range files {
		args = append(args, "--values", filepath.Join(chartDir, f))
	}
	if values != "" {
		path := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(path, []byte(values), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--values", path)
	}
	return args
}

func mustRender(t *testing.T, files []string, values string) manifests {
	t.Helper()
	ms, err := render(t, files, values)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// ofType returns the objects of type T (e.g. *appsv1.Deployment).
func ofType[T metav1.Object](ms manifests) []T {
	var out []T
	for _, o := range ms {
		if v, ok := o.Obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// one returns the only object of type T, failing the test otherwise.
func one[T metav1.Object](t *testing.T, ms manifests) T {
	t.Helper()
	objs := ofType[T](ms)
	if len(objs) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, got %d", zero, len(objs))
	}
	return objs[0]
}

// find returns the object of type T with the given name.
func find[T metav1.Object](ms manifests, name string) (T, bool) {
	for _, v := range ofType[T](ms) {
		if v.GetName() == name {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// hook is what Helm's hook annotations say about an object.
type hook struct {
	Events         []string
	Weight         int
	DeletePolicies []string
}

// hookOf reads an object's Helm hook annotations; false if it is no hook.
func hookOf(t *testing.T, obj metav1.Object) (hook, bool) {
	t.Helper()
	a := obj.GetAnnotations()
	events, ok := a["helm.sh/hook"]
	if !ok {
		return hook{}, false
	}
	h := hook{Events: strings.Split(events, ",")}
	if w, ok := a["helm.sh/hook-weight"]; ok {
		n, err := strconv.Atoi(w)
		if err != nil {
			t.Fatalf("%s: helm.sh/hook-weight %q is not an integer", obj.GetName(), w)
		}
		h.Weight = n
	}
	if p, ok := a["helm.sh/hook-delete-policy"]; ok {
		h.DeletePolicies = strings.Split(p, ",")
	}
	return h, true
}

// TestStrictDecodingCatchesTypos proves the decoder is as strict as the
// tests rely on: a misspelt field, a field in the wrong case and a duplicate
// key each fail.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"unknown field": `apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80, targetPort: http}], selectr: {a: b}}
`,
		"wrong case": `apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80, targetport: http}]}
`,
		"duplicate key": `apiVersion: v1
kind: Service
metadata: {name: s}
spec: {type: ClusterIP, type: NodePort}
`,
		"unknown kind": `apiVersion: v1
kind: Pod
metadata: {name: p}
`,
		"not in the CRD subset": `apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: m}
spec: {endpoints: [{port: http, path: /metrics, honorLabels: true}]}
`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeManifests("---\n" + doc); err == nil {
				t.Errorf("decoded without error:\n%s", doc)
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		ms, err := decodeManifests("---\n# Source: x\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80, targetPort: http}]}\n")
		if err != nil || len(ms) != 1 || ms[0].Source != "x" {
			t.Fatalf("got %v, %v", ms, err)
		}
	})
}
