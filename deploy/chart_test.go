package deploy

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// minimal is the least an install needs: a database.
const minimal = "database:\n  url: postgres://factos:secret@postgres:5432/factos\n"

// scenario is one set of values the chart must render correctly.
type scenario struct {
	name   string
	files  []string // values files in the chart directory
	values string   // inline values, applied last
	// external lists the Secrets the scenario says exist outside the chart,
	// with their keys; every secretKeyRef must resolve to one of these or to
	// a Secret the chart renders.
	external map[string][]string
	// want holds the scenario's own expectations, on top of the checks every
	// scenario gets.
	want func(t *testing.T, ms manifests)
}

var scenarios = []scenario{
	{
		name:   "defaults",
		values: minimal,
		want: func(t *testing.T, ms manifests) {
			for _, kind := range []string{"PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy", "Ingress"} {
				if k := kinds(ms); slices.Contains(k, kind) {
					t.Errorf("%s rendered by default", kind)
				}
			}
			d := one[*appsv1.Deployment](t, ms)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
				t.Errorf("replicas = %v, want 1", d.Spec.Replicas)
			}
			env := resolveEnv(t, ms, worker(t, d.Spec.Template.Spec))
			if env["RIVERUI_ENABLED"].value != "false" {
				t.Errorf("River UI is on by default")
			}
			if _, ok := env["RIVERUI_USERNAME"]; ok {
				t.Errorf("River UI credentials wired although the UI is off")
			}
			if _, ok := hookOf(t, one[*batchv1.Job](t, ms)); !ok {
				t.Errorf("the migration Job is not a hook by default")
			}
		},
	},
	{
		name:  "production",
		files: []string{"values-production.yaml"},
		external: map[string][]string{
			"factos-database":            {"database-url"},
			"factos-database-migrations": {"database-url"},
			"factos-riverui":             {"username", "password"},
		},
		want: func(t *testing.T, ms manifests) {
			if s := ofType[*corev1.Secret](ms); len(s) != 0 {
				t.Errorf("production values render Secrets %v; they should all be existing ones", names(s))
			}
			d := one[*appsv1.Deployment](t, ms)
			if d.Spec.Replicas != nil {
				t.Errorf("replicas set although the HPA owns them")
			}
			hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, ms)
			if hpa.Spec.MaxReplicas < 3 || *hpa.Spec.MinReplicas < 3 {
				t.Errorf("HPA %d..%d, want at least 3 pods", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
			}
			one[*policyv1.PodDisruptionBudget](t, ms)
			one[*networkingv1.NetworkPolicy](t, ms)
			sm := one[*serviceMonitor](t, ms)
			if sm.Labels["release"] != "kube-prometheus-stack" {
				t.Errorf("ServiceMonitor labels %v lack the Prometheus selector label", sm.Labels)
			}
			ing := one[*networkingv1.Ingress](t, ms)
			if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName == "" {
				t.Errorf("production Ingress without TLS")
			}
			env := resolveEnv(t, ms, worker(t, d.Spec.Template.Spec))
			wantSecret(t, env, "DATABASE_URL", "factos-database", "database-url")
			wantSecret(t, env, "RIVERUI_PASSWORD", "factos-riverui", "password")
			jobEnv := resolveEnv(t, ms, one[*batchv1.Job](t, ms).Spec.Template.Spec.Containers[0])
			wantSecret(t, jobEnv, "DATABASE_URL", "factos-database-migrations", "database-url")
			if v := env["TEMPORAL_ADDRESS"].value; v != "temporal-frontend.temporal.svc.cluster.local:7233" {
				t.Errorf("TEMPORAL_ADDRESS = %q", v)
			}
		},
	},
	{
		name:   "hooks disabled",
		values: minimal + "migrations:\n  hooks: false\n",
		want: func(t *testing.T, ms manifests) {
			for _, o := range ms {
				if _, ok := hookOf(t, o.Obj); ok {
					t.Errorf("%s is a hook although hooks are off", o)
				}
			}
			job := one[*batchv1.Job](t, ms)
			if !regexp.MustCompile(`-migrate-1-[0-9a-f]{6}$`).MatchString(job.Name) {
				t.Errorf("Job name %q does not carry the revision and image", job.Name)
			}
			// Jobs are immutable: a new image must give a new Job.
			other := one[*batchv1.Job](t, mustRender(t, nil, minimal+"migrations:\n  hooks: false\nimage:\n  tag: \"9.9.9\"\n"))
			if other.Name == job.Name {
				t.Errorf("Job name %q does not change with the image", job.Name)
			}
		},
	},
	{
		name:     "existing secret",
		values:   "database:\n  existingSecret: factos-db\n  existingSecretKey: url\n",
		external: map[string][]string{"factos-db": {"url"}},
		want: func(t *testing.T, ms manifests) {
			if s := ofType[*corev1.Secret](ms); len(s) != 0 {
				t.Errorf("Secrets %v rendered although an existing one is named", names(s))
			}
			wantSecret(t, resolveEnv(t, ms, worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec)), "DATABASE_URL", "factos-db", "url")
			wantSecret(t, resolveEnv(t, ms, one[*batchv1.Job](t, ms).Spec.Template.Spec.Containers[0]), "DATABASE_URL", "factos-db", "url")
		},
	},
	{
		name: "existing secret with a url left over",
		// The URL must be ignored, not leak into a Secret.
		values:   "database:\n  existingSecret: factos-db\n  url: postgres://old@db/factos\n",
		external: map[string][]string{"factos-db": {"database-url"}},
		want: func(t *testing.T, ms manifests) {
			if s := ofType[*corev1.Secret](ms); len(s) != 0 {
				t.Errorf("Secrets %v rendered although an existing one is named", names(s))
			}
		},
	},
	{
		name: "separate migration role",
		values: "database:\n  existingSecret: factos-db\n" +
			"migrations:\n  databaseUrl: postgres://owner:secret@postgres:5432/factos\n  serviceAccountName: factos-migrator\n",
		external: map[string][]string{"factos-db": {"database-url"}},
		want: func(t *testing.T, ms manifests) {
			job := one[*batchv1.Job](t, ms)
			env := resolveEnv(t, ms, job.Spec.Template.Spec.Containers[0])
			s, ok := find[*corev1.Secret](ms, env["DATABASE_URL"].secret)
			if !ok || string(s.Data["database-url"]) != "postgres://owner:secret@postgres:5432/factos" {
				t.Errorf("the Job does not read migrations.databaseUrl: %+v", env["DATABASE_URL"])
			}
			wantSecret(t, resolveEnv(t, ms, worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec)), "DATABASE_URL", "factos-db", "database-url")
			if job.Spec.Template.Spec.ServiceAccountName != "factos-migrator" {
				t.Errorf("Job service account %q", job.Spec.Template.Spec.ServiceAccountName)
			}
		},
	},
	{
		name: "river ui with ingress",
		values: minimal + `riverui:
  enabled: true
  username: admin
  password: s3cret
  ingress:
    enabled: true
    className: nginx
    host: factos.example.com
    tlsSecretName: factos-tls
`,
		want: func(t *testing.T, ms manifests) {
			env := resolveEnv(t, ms, worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec))
			if env["RIVERUI_ENABLED"].value != "true" || env["RIVERUI_ALLOW_UNAUTHENTICATED"].value != "false" {
				t.Errorf("RIVERUI_ENABLED=%q RIVERUI_ALLOW_UNAUTHENTICATED=%q", env["RIVERUI_ENABLED"].value, env["RIVERUI_ALLOW_UNAUTHENTICATED"].value)
			}
			s, ok := find[*corev1.Secret](ms, env["RIVERUI_USERNAME"].secret)
			if !ok || string(s.Data["username"]) != "admin" || string(s.Data["password"]) != "s3cret" {
				t.Errorf("River UI credentials do not come from the chart's Secret")
			}
			ing := one[*networkingv1.Ingress](t, ms)
			if ing.Spec.Rules[0].Host != "factos.example.com" || ing.Spec.TLS[0].Hosts[0] != "factos.example.com" {
				t.Errorf("Ingress host/TLS: %+v %+v", ing.Spec.Rules, ing.Spec.TLS)
			}
		},
	},
	{
		name:     "river ui with existing secret",
		values:   minimal + "riverui:\n  enabled: true\n  existingSecret: factos-riverui\n",
		external: map[string][]string{"factos-riverui": {"username", "password"}},
		want: func(t *testing.T, ms manifests) {
			env := resolveEnv(t, ms, worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec))
			wantSecret(t, env, "RIVERUI_USERNAME", "factos-riverui", "username")
			wantSecret(t, env, "RIVERUI_PASSWORD", "factos-riverui", "password")
		},
	},
	{
		name:   "river ui unauthenticated",
		values: minimal + "riverui:\n  enabled: true\n  allowUnauthenticated: true\n",
		want: func(t *testing.T, ms manifests) {
			env := resolveEnv(t, ms, worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec))
			if env["RIVERUI_ALLOW_UNAUTHENTICATED"].value != "true" {
				t.Errorf("RIVERUI_ALLOW_UNAUTHENTICATED = %q", env["RIVERUI_ALLOW_UNAUTHENTICATED"].value)
			}
		},
	},
	{
		name: "unauthenticated flag without the ui",
		// allowUnauthenticated alone must not reach the worker.
		values: minimal + "riverui:\n  allowUnauthenticated: true\n",
		want: func(t *testing.T, ms manifests) {
			env := resolveEnv(t, ms, worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec))
			if env["RIVERUI_ALLOW_UNAUTHENTICATED"].value != "false" {
				t.Errorf("RIVERUI_ALLOW_UNAUTHENTICATED = %q with the UI off", env["RIVERUI_ALLOW_UNAUTHENTICATED"].value)
			}
		},
	},
	{
		name:   "hpa",
		values: minimal + "autoscaling:\n  enabled: true\n  minReplicas: 2\n  maxReplicas: 5\n  targetMemoryUtilizationPercentage: 80\n",
		want: func(t *testing.T, ms manifests) {
			hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, ms)
			if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 5 || len(hpa.Spec.Metrics) != 2 {
				t.Errorf("HPA spec %+v", hpa.Spec)
			}
			if one[*appsv1.Deployment](t, ms).Spec.Replicas != nil {
				t.Errorf("replicas set although the HPA owns them")
			}
			// More than one pod: the PDB turns on by itself.
			one[*policyv1.PodDisruptionBudget](t, ms)
		},
	},
	{
		name:   "pdb from replica count",
		values: minimal + "replicaCount: 2\n",
		want: func(t *testing.T, ms manifests) {
			pdb := one[*policyv1.PodDisruptionBudget](t, ms)
			if pdb.Spec.UnhealthyPodEvictionPolicy == nil || *pdb.Spec.UnhealthyPodEvictionPolicy != policyv1.AlwaysAllow {
				t.Errorf("unhealthyPodEvictionPolicy = %v, want AlwaysAllow", pdb.Spec.UnhealthyPodEvictionPolicy)
			}
		},
	},
	{
		name:   "pdb forced off",
		values: minimal + "replicaCount: 3\npodDisruptionBudget:\n  enabled: false\n",
		want: func(t *testing.T, ms manifests) {
			if len(ofType[*policyv1.PodDisruptionBudget](ms)) != 0 {
				t.Errorf("PDB rendered although disabled")
			}
		},
	},
	{
		name:   "network policy",
		values: minimal + "networkPolicy:\n  enabled: true\n",
		want: func(t *testing.T, ms manifests) {
			np := one[*networkingv1.NetworkPolicy](t, ms)
			if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				t.Errorf("egress not restricted")
			}
			ports := egressPorts(np)
			for _, p := range []string{"53/UDP", "5432/TCP", "7233/TCP"} {
				if !slices.Contains(ports, p) {
					t.Errorf("egress ports %v lack %s", ports, p)
				}
			}
			if len(np.Spec.Ingress) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != "http" {
				t.Errorf("ingress rules %+v, want the http port only", np.Spec.Ingress)
			}
		},
	},
	{
		name:   "network policy without temporal",
		values: minimal + "networkPolicy:\n  enabled: true\ntemporal:\n  enabled: false\n",
		want: func(t *testing.T, ms manifests) {
			if ports := egressPorts(one[*networkingv1.NetworkPolicy](t, ms)); slices.Contains(ports, "7233/TCP") {
				t.Errorf("egress to Temporal open although Temporal is off: %v", ports)
			}
			env := resolveEnv(t, ms, worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec))
			if env["TEMPORAL_ENABLED"].value != "false" {
				t.Errorf("TEMPORAL_ENABLED = %q", env["TEMPORAL_ENABLED"].value)
			}
		},
	},
	{
		name:   "service monitor",
		values: minimal + "serviceMonitor:\n  enabled: true\n  interval: 15s\n",
		want: func(t *testing.T, ms manifests) {
			if sm := one[*serviceMonitor](t, ms); sm.Spec.Endpoints[0].Interval != "15s" {
				t.Errorf("interval = %q", sm.Spec.Endpoints[0].Interval)
			}
		},
	},
	{
		name:   "custom port and shutdown timeout",
		values: minimal + "httpPort: 9090\nshutdownTimeoutSeconds: 120\n",
		want: func(t *testing.T, ms manifests) {
			d := one[*appsv1.Deployment](t, ms)
			if got := *d.Spec.Template.Spec.TerminationGracePeriodSeconds; got != 135 {
				t.Errorf("terminationGracePeriodSeconds = %d, want 120+15", got)
			}
			env := resolveEnv(t, ms, worker(t, d.Spec.Template.Spec))
			if env["HTTP_ADDR"].value != ":9090" || env["SHUTDOWN_TIMEOUT"].value != "120s" {
				t.Errorf("HTTP_ADDR=%q SHUTDOWN_TIMEOUT=%q", env["HTTP_ADDR"].value, env["SHUTDOWN_TIMEOUT"].value)
			}
		},
	},
	{
		name:   "recreate strategy",
		values: minimal + "updateStrategy:\n  type: Recreate\n",
		want: func(t *testing.T, ms manifests) {
			s := one[*appsv1.Deployment](t, ms).Spec.Strategy
			if s.Type != appsv1.RecreateDeploymentStrategyType || s.RollingUpdate != nil {
				t.Errorf("strategy %+v: the API rejects rollingUpdate with Recreate", s)
			}
		},
	},
	{
		name:   "migrations disabled",
		values: minimal + "migrations:\n  enabled: false\n",
		want: func(t *testing.T, ms manifests) {
			if len(ofType[*batchv1.Job](ms)) != 0 {
				t.Errorf("migration Job rendered although disabled")
			}
			if _, ok := find[*corev1.Secret](ms, "factos-factos-worker-migrations"); ok {
				t.Errorf("migration Secret rendered although migrations are disabled")
			}
		},
	},
	{
		name: "image digest and the longest name",
		// Every suffixed name (Secrets, Job, Ingress) must stay valid and distinct.
		values: minimal + "fullnameOverride: " + strings.Repeat("n", 63) + "\nimage:\n  digest: sha256:" + strings.Repeat("ab", 32) + "\n" +
			"riverui:\n  enabled: true\n  username: a\n  password: b\n  ingress:\n    enabled: true\n",
		want: func(t *testing.T, ms manifests) {
			c := worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec)
			if !strings.HasSuffix(c.Image, "@sha256:"+strings.Repeat("ab", 32)) {
				t.Errorf("image %q is not pinned by the digest", c.Image)
			}
			if s := ofType[*corev1.Secret](ms); len(s) != 3 {
				t.Errorf("want the database, migrations and River UI Secrets, got %v", names(s))
			}
		},
	},
}

// TestTemplate renders every scenario, decodes every object strictly into its
// API type and checks the chart against the worker's contract.
func TestTemplate(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ms := mustRender(t, sc.files, sc.values)
			checkObjects(t, ms)
			checkSelectors(t, ms)
			checkReferences(t, ms, sc.external)
			checkSecurity(t, ms)
			checkContract(t, ms, mustSpec(t))
			if sc.want != nil {
				sc.want(t, ms)
			}
		})
	}
}

// TestLint runs helm lint --strict: warnings fail too.
func TestLint(t *testing.T) {
	t.Parallel()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", chartDir, "--namespace", "factos"}, valuesArgs(t, sc.files, sc.values)...)
			out, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("lint output:\n%s", out)
			}
		})
	}
}

// TestValuesRejected: values.schema.json and the templates' fail/required
// refuse wrong values at install time, naming what is wrong.
func TestValuesRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, values, want string
	}{
		// Schema.
		{"log level not in enum", minimal + "logLevel: loud\n", "/logLevel"},
		{"replica count as a string", minimal + "replicaCount: three\n", "/replicaCount"},
		{"unknown top-level key", minimal + "replicas: 3\n", "'replicas' not allowed"},
		{"unknown nested key", minimal + "riverui:\n  enable: true\n", "'enable' not allowed"},
		{"log format not in enum", minimal + "logFormat: xml\n", "/logFormat"},
		{"lock strategy not in enum", minimal + "lockStrategy: optimistic\n", "/lockStrategy"},
		{"shutdown timeout as a duration", minimal + "shutdownTimeoutSeconds: 30s\n", "/shutdownTimeoutSeconds"},
		{"zero shutdown timeout", minimal + "shutdownTimeoutSeconds: 0\n", "/shutdownTimeoutSeconds"},
		{"privileged http port", minimal + "httpPort: 80\n", "/httpPort"},
		{"database url not postgres", "database:\n  url: mysql://db/factos\n", "/database/url"},
		{"temporal address without port", minimal + "temporal:\n  address: temporal\n", "/temporal/address"},
		{"job timeout without unit", minimal + "river:\n  jobTimeout: \"60\"\n", "/river/jobTimeout"},
		{"pull policy not in enum", minimal + "image:\n  pullPolicy: Sometimes\n", "/image/pullPolicy"},
		{"resources typo", minimal + "resources:\n  request:\n    cpu: 1\n", "'request' not allowed"},
		{"bad quantity", minimal + "resources:\n  limits:\n    memory: lots\n", "/resources/limits/memory"},
		{"scrape interval without unit", minimal + "serviceMonitor:\n  interval: \"30\"\n", "/serviceMonitor/interval"},
		{"pdb enabled as a string", minimal + "podDisruptionBudget:\n  enabled: \"yes\"\n", "/podDisruptionBudget/enabled"},
		{"hook delete policy unknown", minimal + "migrations:\n  hookDeletePolicy: never\n", "/migrations/hookDeletePolicy"},
		// Templates.
		{"no database", "{}\n", "set database.existingSecret (preferred) or database.url"},
		{"river ui without credentials", minimal + "riverui:\n  enabled: true\n", "riverui.enabled needs riverui.existingSecret"},
		{"river ui with half the credentials", minimal + "riverui:\n  enabled: true\n  username: admin\n", "riverui.enabled needs"},
		{"ingress without river ui", minimal + "riverui:\n  ingress:\n    enabled: true\n", "riverui.ingress.enabled needs riverui.enabled"},
		{"unauthenticated ui behind an ingress", minimal + "riverui:\n  enabled: true\n  allowUnauthenticated: true\n  ingress:\n    enabled: true\n", "refusing to expose an unauthenticated River UI"},
		{"hpa min above max", minimal + "autoscaling:\n  enabled: true\n  minReplicas: 5\n  maxReplicas: 2\n", "minReplicas must not exceed"},
		{"tls without host", minimal + "riverui:\n  enabled: true\n  existingSecret: x\n  ingress:\n    enabled: true\n    tlsSecretName: t\n", "riverui.ingress.host is needed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := render(t, nil, tc.values)
			if err == nil {
				t.Fatalf("helm template accepted:\n%s", tc.values)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
}

// TestChecksumRollsPods: a change to the worker's settings or to a
// chart-made Secret changes the pod template, so the pods restart with it;
// a change to neither leaves the pods alone.
func TestChecksumRollsPods(t *testing.T) {
	t.Parallel()
	checksum := func(values string) string {
		d := one[*appsv1.Deployment](t, mustRender(t, nil, values))
		sum := d.Spec.Template.Annotations["checksum/config"]
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
			t.Fatalf("checksum/config = %q", sum)
		}
		return sum
	}
	ui := func(password string) string {
		return minimal + "riverui:\n  enabled: true\n  username: admin\n  password: " + password + "\n"
	}
	for _, tc := range []struct {
		name      string
		from, to  string
		wantRolls bool
	}{
		{"log level", minimal, minimal + "logLevel: debug\n", true},
		{"database url", minimal, "database:\n  url: postgres://factos:other@postgres:5432/factos\n", true},
		{"river ui password alone", ui("one"), ui("two"), true},
		{"replica count", minimal, minimal + "replicaCount: 2\n", false},
	} {
		if rolls := checksum(tc.from) != checksum(tc.to); rolls != tc.wantRolls {
			t.Errorf("%s: checksum changed = %v, want %v", tc.name, rolls, tc.wantRolls)
		}
	}
}

// checkObjects: names and labels the API server accepts, no duplicates.
func checkObjects(t *testing.T, ms manifests) {
	seen := map[string]bool{}
	for _, o := range ms {
		name := o.Obj.GetName()
		key := o.Kind + "/" + name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		if o.Obj.GetNamespace() != "factos" {
			t.Errorf("%s: namespace %q, want the release's", o, o.Obj.GetNamespace())
		}
		var problems []string
		switch o.Kind {
		case "Service":
			problems = validation.IsDNS1035Label(name)
		case "Job":
			// The Job's name becomes a label value on its pods.
			problems = validation.IsDNS1123Label(name)
		default:
			problems = validation.IsDNS1123Subdomain(name)
		}
		for _, p := range problems {
			t.Errorf("%s: name: %s", o, p)
		}
		checkLabels(t, o.String(), o.Obj.GetLabels())
		if p := podTemplate(o.Obj); p != nil {
			checkLabels(t, o.String()+" pod template", p.Labels)
		}
	}
}

func checkLabels(t *testing.T, what string, l map[string]string) {
	t.Helper()
	for k, v := range l {
		for _, p := range validation.IsQualifiedName(k) {
			t.Errorf("%s: label key %q: %s", what, k, p)
		}
		for _, p := range validation.IsValidLabelValue(v) {
			t.Errorf("%s: label %s=%q: %s", what, k, v, p)
		}
	}
}

// podTemplate returns the pod template of a workload, or nil.
func podTemplate(obj metav1.Object) *corev1.PodTemplateSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *batchv1.Job:
		return &o.Spec.Template
	}
	return nil
}

// checkSelectors: every selector picks the worker pods it is meant for and
// never the migration Job's pods.
func checkSelectors(t *testing.T, ms manifests) {
	d := one[*appsv1.Deployment](t, ms)
	workerPods := labels.Set(d.Spec.Template.Labels)
	var jobPods []labels.Set
	for _, j := range ofType[*batchv1.Job](ms) {
		jobPods = append(jobPods, labels.Set(j.Spec.Template.Labels))
	}
	wantSelects := func(what string, sel *metav1.LabelSelector, includeJobs bool) {
		t.Helper()
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() {
			t.Errorf("%s: selector %v: %v (empty selects everything)", what, sel, err)
			return
		}
		if !s.Matches(workerPods) {
			t.Errorf("%s: selector %v misses the worker pods %v", what, sel, workerPods)
		}
		for _, j := range jobPods {
			if s.Matches(j) != includeJobs {
				t.Errorf("%s: selector %v matches the migration pods = %v, want %v", what, sel, !includeJobs, includeJobs)
			}
		}
	}
	wantSelects("Deployment", d.Spec.Selector, false)
	svc := one[*corev1.Service](t, ms)
	wantSelects("Service", &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, false)
	for _, p := range ofType[*policyv1.PodDisruptionBudget](ms) {
		wantSelects("PodDisruptionBudget", p.Spec.Selector, false)
	}
	for _, np := range ofType[*networkingv1.NetworkPolicy](ms) {
		// The migration pods need DNS and PostgreSQL too: the policy covers them.
		wantSelects("NetworkPolicy", &np.Spec.PodSelector, true)
	}
	for _, sm := range ofType[*serviceMonitor](ms) {
		s, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || !s.Matches(labels.Set(svc.Labels)) {
			t.Errorf("ServiceMonitor selector %v misses Service labels %v", sm.Spec.Selector, svc.Labels)
		}
		if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{svc.Namespace}) {
			t.Errorf("ServiceMonitor namespaceSelector %v", sm.Spec.NamespaceSelector)
		}
	}
	for _, h := range ofType[*autoscalingv2.HorizontalPodAutoscaler](ms) {
		if r := h.Spec.ScaleTargetRef; r.Kind != "Deployment" || r.APIVersion != "apps/v1" || r.Name != d.Name {
			t.Errorf("HPA targets %+v, want Deployment %s", r, d.Name)
		}
	}
	for _, ing := range ofType[*networkingv1.Ingress](ms) {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				b := p.Backend.Service
				if b == nil || b.Name != svc.Name || !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == b.Port.Name }) {
					t.Errorf("Ingress backend %+v is not a named port of Service %s", b, svc.Name)
				}
			}
		}
	}
}

// checkReferences: every ConfigMap, Secret and ServiceAccount a pod uses
// exists when the pod starts. A chart-made object is in the render; an
// existing Secret is one the scenario names. With hooks on, the migration Job
// runs before the release's ordinary objects exist, so what it uses must be a
// hook of lower weight (or exist already); the worker must never use a hook
// object, which Helm deletes after the hooks have run.
func checkReferences(t *testing.T, ms manifests, external map[string][]string) {
	hookOK := func(user string, userHook hook, isHook bool, used metav1.Object) {
		t.Helper()
		h, usedIsHook := hookOf(t, used)
		switch {
		case !isHook && usedIsHook:
			t.Errorf("%s uses %s, a hook that Helm deletes and does not manage", user, used.GetName())
		case isHook && !usedIsHook:
			t.Errorf("%s is a hook but uses %s, which does not exist yet when hooks run", user, used.GetName())
		case isHook:
			for _, e := range userHook.Events {
				if !slices.Contains(h.Events, e) {
					t.Errorf("%s runs on %s but %s is not created on it", user, e, used.GetName())
				}
			}
			if h.Weight >= userHook.Weight {
				t.Errorf("%s (weight %d) is not created after %s (weight %d)", user, userHook.Weight, used.GetName(), h.Weight)
			}
		}
	}
	for _, o := range ms {
		pod := podTemplate(o.Obj)
		if pod == nil {
			continue
		}
		user := o.String()
		userHook, isHook := hookOf(t, o.Obj)
		if sa := pod.Spec.ServiceAccountName; sa != "" && sa != "default" {
			if obj, ok := find[*corev1.ServiceAccount](ms, sa); ok {
				hookOK(user, userHook, isHook, obj)
			} else if o.Kind == "Deployment" {
				t.Errorf("%s uses ServiceAccount %s, which the chart does not render", user, sa)
			}
		}
		for _, c := range pod.Spec.Containers {
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					if obj, ok := find[*corev1.ConfigMap](ms, ef.ConfigMapRef.Name); !ok {
						t.Errorf("%s uses ConfigMap %s, which the chart does not render", user, ef.ConfigMapRef.Name)
					} else {
						hookOK(user, userHook, isHook, obj)
					}
				case ef.SecretRef != nil:
					t.Errorf("%s: envFrom a Secret hides which variables it sets; use secretKeyRef", user)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					if obj, ok := find[*corev1.Secret](ms, r.Name); ok {
						if _, has := obj.Data[r.Key]; !has {
							t.Errorf("%s: %s reads key %q that Secret %s lacks", user, e.Name, r.Key, r.Name)
						}
						hookOK(user, userHook, isHook, obj)
					} else if !slices.Contains(external[r.Name], r.Key) {
						t.Errorf("%s: %s reads Secret %s key %q, neither rendered nor an existing Secret of the scenario", user, e.Name, r.Name, r.Key)
					}
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					if obj, ok := find[*corev1.ConfigMap](ms, r.Name); !ok {
						t.Errorf("%s: %s reads ConfigMap %s, which the chart does not render", user, e.Name, r.Name)
					} else {
						hookOK(user, userHook, isHook, obj)
					}
				}
			}
		}
	}
}

// checkSecurity: the hardened defaults hold for every pod the chart makes.
func checkSecurity(t *testing.T, ms manifests) {
	for _, sa := range ofType[*corev1.ServiceAccount](ms) {
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("ServiceAccount %s mounts tokens by default", sa.Name)
		}
	}
	for _, o := range ms {
		pod := podTemplate(o.Obj)
		if pod == nil {
			continue
		}
		p := pod.Spec
		psc := p.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken is not false", o)
		}
		if p.HostNetwork || p.HostPID || p.HostIPC {
			t.Errorf("%s: shares a host namespace", o)
		}
		if psc.RunAsUser == nil || *psc.RunAsUser != 65532 || psc.RunAsGroup == nil || *psc.RunAsGroup != 65532 {
			t.Errorf("%s: pod runs as %v:%v, want 65532:65532", o, psc.RunAsUser, psc.RunAsGroup)
		}
		if len(p.InitContainers) != 0 {
			t.Errorf("%s: unexpected init containers", o)
		}
		for _, c := range p.Containers {
			what := fmt.Sprintf("%s container %s", o, c.Name)
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", what)
				continue
			}
			nonRoot := sc.RunAsNonRoot
			if nonRoot == nil {
				nonRoot = psc.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s: runAsNonRoot is not true", what)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: root filesystem is writable", what)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", what)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", what)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) != 0 {
				t.Errorf("%s: capabilities %+v, want drop ALL and add none", what, sc.Capabilities)
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = psc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccomp profile %+v, want RuntimeDefault", what, seccomp)
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: memory request and limit must be set: %+v", what, c.Resources)
			}
			// A read-only root needs somewhere to write temporary files.
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/tmp" }) {
				t.Errorf("%s: no writable /tmp", what)
			}
		}
	}
}

// envSource is where a container's variable comes from.
type envSource struct {
	value     string // the literal value, also when it comes from the ConfigMap
	literal   bool   // a value the chart knows (inline or from its ConfigMap)
	configMap string // set when from a ConfigMap
	secret    string // set when from a Secret
	key       string // the Secret's key
}

// resolveEnv lists a container's variables and their sources, with the
// Kubernetes precedence: env entries override envFrom.
func resolveEnv(t *testing.T, ms manifests, c corev1.Container) map[string]envSource {
	t.Helper()
	env := map[string]envSource{}
	for _, ef := range c.EnvFrom {
		if ef.Prefix != "" {
			t.Errorf("container %s: envFrom prefix %q", c.Name, ef.Prefix)
		}
		if ef.ConfigMapRef == nil {
			continue
		}
		cm, ok := find[*corev1.ConfigMap](ms, ef.ConfigMapRef.Name)
		if !ok {
			t.Fatalf("container %s: ConfigMap %s not rendered", c.Name, ef.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[k] = envSource{value: v, literal: true, configMap: cm.Name}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = envSource{value: e.Value, literal: true}
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = envSource{secret: e.ValueFrom.SecretKeyRef.Name, key: e.ValueFrom.SecretKeyRef.Key}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			cm, ok := find[*corev1.ConfigMap](ms, r.Name)
			if !ok {
				t.Fatalf("container %s: ConfigMap %s not rendered", c.Name, r.Name)
			}
			env[e.Name] = envSource{value: cm.Data[r.Key], literal: true, configMap: r.Name}
		default:
			env[e.Name] = envSource{} // field or resource reference: set, value unknown
		}
	}
	return env
}

func wantSecret(t *testing.T, env map[string]envSource, name, secret, key string) {
	t.Helper()
	if got := env[name]; got.secret != secret || got.key != key {
		t.Errorf("%s comes from %+v, want Secret %s key %s", name, got, secret, key)
	}
}

// worker returns the worker container of the Deployment's pod.
func worker(t *testing.T, p corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(p.Containers) != 1 {
		t.Fatalf("want one container in the worker pod, got %d", len(p.Containers))
	}
	return p.Containers[0]
}

// checkContract checks the chart against what the worker binary says about
// itself (`worker spec`).
func checkContract(t *testing.T, ms manifests, sp *workerSpec) {

	// No ConfigMap may carry a secret variable: ConfigMaps are readable by
	// far more people than Secrets.
	for _, cm := range ofType[*corev1.ConfigMap](ms) {
		for k := range cm.Data {
			if v, ok := sp.envVar(k); ok && v.Secret {
				t.Errorf("ConfigMap %s holds secret variable %s", cm.Name, k)
			}
		}
	}

	d := one[*appsv1.Deployment](t, ms)
	c := worker(t, d.Spec.Template.Spec)
	env := checkEnv(t, "Deployment", ms, c, sp)
	if len(c.Command) != 0 {
		t.Errorf("Deployment overrides the image's entrypoint with %v", c.Command)
	}
	if want := sp.command(t, "run"); !slices.Equal(c.Args, want) {
		t.Errorf("Deployment args %v, want the run command's %v", c.Args, want)
	}

	// HTTP: the port named http is where HTTP_ADDR makes the worker listen.
	port := sp.HTTP.DefaultPort
	if a, ok := env[sp.HTTP.AddrVar]; ok {
		_, p, err := net.SplitHostPort(a.value)
		if err != nil {
			t.Fatalf("%s=%q: %v", sp.HTTP.AddrVar, a.value, err)
		}
		if port, err = strconv.Atoi(p); err != nil {
			t.Fatalf("%s=%q: port: %v", sp.HTTP.AddrVar, a.value, err)
		}
	}
	var httpPort *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "http" {
			httpPort = &c.Ports[i]
		}
	}
	if httpPort == nil || int(httpPort.ContainerPort) != port {
		t.Fatalf("container port http = %+v, want %d (from %s)", httpPort, port, sp.HTTP.AddrVar)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		t.Helper()
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			return
		}
		if p.HTTPGet.Path != path {
			t.Errorf("%s probe path %q, want %q", name, p.HTTPGet.Path, path)
		}
		if hp := p.HTTPGet.Port; hp != intstr.FromString("http") && hp != intstr.FromInt32(httpPort.ContainerPort) {
			t.Errorf("%s probe port %s, want the http port", name, hp.String())
		}
	}
	probe("liveness", c.LivenessProbe, sp.HTTP.Liveness)
	probe("readiness", c.ReadinessProbe, sp.HTTP.Readiness)
	// Startup waits for the process, not for the database or migrations: a
	// slow migration (hooks off) must not get the pod killed.
	probe("startup", c.StartupProbe, sp.HTTP.Liveness)

	svc := one[*corev1.Service](t, ms)
	for _, p := range svc.Spec.Ports {
		if p.Name == "http" && p.TargetPort != intstr.FromString("http") {
			t.Errorf("Service port http targets %s, want the named container port", p.TargetPort.String())
		}
	}
	for _, sm := range ofType[*serviceMonitor](ms) {
		for _, e := range sm.Spec.Endpoints {
			if e.Path != sp.HTTP.Metrics || e.Port != "http" {
				t.Errorf("ServiceMonitor scrapes %s on port %s, want %s on http", e.Path, e.Port, sp.HTTP.Metrics)
			}
		}
	}
	for _, ing := range ofType[*networkingv1.Ingress](ms) {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				// Prefix matching ignores a trailing slash; the UI is all
				// the Ingress may expose, never /metrics or the probes.
				if p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix || strings.TrimSuffix(p.Path, "/") != strings.TrimSuffix(sp.HTTP.RiverUI, "/") {
					t.Errorf("Ingress path %q (%v), want Prefix %s", p.Path, p.PathType, sp.HTTP.RiverUI)
				}
			}
		}
	}

	// Shutdown: Kubernetes must wait longer than the worker does.
	shutdown := 0 * time.Second
	if v, ok := sp.envVar(sp.ShutdownTimeoutVar); ok && v.Default != "" {
		var err error
		if shutdown, err = time.ParseDuration(v.Default); err != nil {
			t.Fatalf("spec default of %s: %v", v.Name, err)
		}
	}
	if s, ok := env[sp.ShutdownTimeoutVar]; ok {
		var err error
		if shutdown, err = time.ParseDuration(s.value); err != nil {
			t.Fatalf("%s=%q: %v", sp.ShutdownTimeoutVar, s.value, err)
		}
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds is not longer than %s=%s", sp.ShutdownTimeoutVar, shutdown)
	}

	// River: a job still running after RIVER_RESCUE_AFTER is presumed lost
	// and retried; rescuing it before its timeout would run it twice at once.
	if to, ra := env["RIVER_JOB_TIMEOUT"], env["RIVER_RESCUE_AFTER"]; to.literal && ra.literal {
		timeout, err1 := time.ParseDuration(to.value)
		rescue, err2 := time.ParseDuration(ra.value)
		if err1 != nil || err2 != nil || rescue <= timeout {
			t.Errorf("RIVER_RESCUE_AFTER=%q must exceed RIVER_JOB_TIMEOUT=%q", ra.value, to.value)
		}
	}

	// River UI: the worker refuses to start with the UI on and no
	// credentials, unless unauthenticated access is allowed.
	if env["RIVERUI_ENABLED"].value == "true" && env["RIVERUI_ALLOW_UNAUTHENTICATED"].value != "true" {
		for _, n := range []string{"RIVERUI_USERNAME", "RIVERUI_PASSWORD"} {
			if _, ok := env[n]; !ok {
				t.Errorf("River UI on without %s", n)
			}
		}
	}

	for _, job := range ofType[*batchv1.Job](ms) {
		p := job.Spec.Template.Spec
		if len(p.Containers) != 1 {
			t.Fatalf("Job %s: want one container, got %d", job.Name, len(p.Containers))
		}
		jc := p.Containers[0]
		checkEnv(t, "Job "+job.Name, ms, jc, sp)
		if len(jc.Command) != 0 {
			t.Errorf("Job overrides the image's entrypoint with %v", jc.Command)
		}
		if want := sp.command(t, "migrate"); !slices.Equal(jc.Args, want) {
			t.Errorf("Job args %v, want the migrate command's %v", jc.Args, want)
		}
		if p.RestartPolicy != corev1.RestartPolicyNever && p.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("Job restartPolicy %q", p.RestartPolicy)
		}
		if job.Spec.BackoffLimit == nil || job.Spec.ActiveDeadlineSeconds == nil {
			t.Errorf("Job %s without backoffLimit or activeDeadlineSeconds", job.Name)
		}
		if h, ok := hookOf(t, job); ok {
			if !slices.Equal(h.Events, []string{"pre-install", "pre-upgrade"}) {
				t.Errorf("Job hook events %v", h.Events)
			}
			// Without it, the next upgrade fails on the existing Job.
			if !slices.Contains(h.DeletePolicies, "before-hook-creation") {
				t.Errorf("Job hook delete policies %v lack before-hook-creation", h.DeletePolicies)
			}
		}
	}
}

// checkEnv checks a container's variables against the spec and returns them.
func checkEnv(t *testing.T, what string, ms manifests, c corev1.Container, sp *workerSpec) map[string]envSource {
	env := resolveEnv(t, ms, c)
	for name, src := range env {
		v, ok := sp.envVar(name)
		if !ok {
			t.Errorf("%s sets %s, which the worker does not read", what, name)
			continue
		}
		if v.Secret && src.secret == "" {
			t.Errorf("%s: secret variable %s does not come from a Secret (%+v)", what, name, src)
		}
		if src.literal {
			if err := likeDefault(src.value, v.Default); err != nil {
				t.Errorf("%s: %s=%q: %v", what, name, src.value, err)
			}
		}
	}
	for _, v := range sp.Env {
		if !v.Required {
			continue
		}
		if src, ok := env[v.Name]; !ok || (src.literal && src.value == "") {
			t.Errorf("%s does not provide required variable %s", what, v.Name)
		}
	}
	return env
}

// likeDefault checks that a value has the shape of the variable's default:
// a boolean, an integer or a duration where the default is one. The spec
// gives no types; this catches "30" for a duration or "yes" for a boolean.
func likeDefault(value, def string) error {
	if _, err := strconv.ParseBool(def); err == nil {
		_, err := strconv.ParseBool(value)
		return err
	}
	if _, err := strconv.Atoi(def); err == nil {
		_, err := strconv.Atoi(value)
		return err
	}
	if _, err := time.ParseDuration(def); err == nil {
		_, err := time.ParseDuration(value)
		return err
	}
	return nil
}

func egressPorts(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			out = append(out, fmt.Sprintf("%s/%s", p.Port.String(), *p.Protocol))
		}
	}
	return out
}

func kinds(ms manifests) []string {
	var out []string
	for _, o := range ms {
		out = append(out, o.Kind)
	}
	return out
}

func names[T metav1.Object](objs []T) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	return out
}
