package deploy

import (
	"fmt"
	"maps"
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
	// externalConfigMaps: the same for ConfigMaps.
	externalConfigMaps map[string][]string
	// extraVars are variables the scenario gives the worker (extraEnv)
	// that the worker itself does not read: GOMEMLIMIT, the domain's.
	extraVars []string
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
		extraVars: []string{"GOMEMLIMIT"},
		want: func(t *testing.T, ms manifests) {
			if s := ofType[*corev1.Secret](ms); len(s) != 0 {
				t.Errorf("production values render Secrets %v; they should all be existing ones", names(s))
			}
			if r := one[*prometheusRule](t, ms); r.Labels["release"] != "kube-prometheus-stack" {
				t.Errorf("PrometheusRule labels %v lack the Prometheus selector label", r.Labels)
			}
			if tsc := one[*appsv1.Deployment](t, ms).Spec.Template.Spec.TopologySpreadConstraints; len(tsc) != 2 {
				t.Errorf("production pods are not spread: %+v", tsc)
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
		name: "temporal cloud with mutual TLS",
		values: minimal + `temporal:
  address: factos.a1b2c.tmprl.cloud:7233
  namespace: factos.a1b2c
  tls:
    clientCert:
      existingSecret: temporal-client-tls
`,
		external: map[string][]string{"temporal-client-tls": {"tls.crt", "tls.key"}},
		want: func(t *testing.T, ms manifests) {
			d := one[*appsv1.Deployment](t, ms)
			env := resolveEnv(t, ms, worker(t, d.Spec.Template.Spec))
			for _, name := range []string{"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"} {
				if env[name].configMap == "" {
					t.Errorf("%s not set from the ConfigMap: %+v", name, env[name])
				}
			}
			for _, name := range []string{"TEMPORAL_TLS", "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_API_KEY", "TEMPORAL_TLS_SERVER_NAME"} {
				if _, ok := env[name]; ok {
					t.Errorf("%s set: %+v", name, env[name])
				}
			}
			v := volume(t, d.Spec.Template.Spec, "temporal-tls")
			if v.Projected == nil || v.Projected.DefaultMode == nil || *v.Projected.DefaultMode != 0o440 {
				t.Errorf("temporal-tls volume %+v: want a projection readable by the group only", v)
			}
			for _, m := range worker(t, d.Spec.Template.Spec).VolumeMounts {
				if m.Name == "temporal-tls" && (!m.ReadOnly || m.SubPath != "") {
					t.Errorf("mount %+v: want read-only and no subPath (a subPath is never updated when the Secret is)", m)
				}
			}
			// The migration Job does not talk to Temporal.
			job := one[*batchv1.Job](t, ms)
			if slices.ContainsFunc(job.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "temporal-tls" }) {
				t.Errorf("the migration Job mounts the Temporal certificates")
			}
		},
	},
	{
		name:     "temporal cloud with an API key",
		values:   minimal + "temporal:\n  address: eu-west-1.aws.api.temporal.io:7233\n  namespace: factos.a1b2c\n  apiKey:\n    existingSecret: temporal-api-key\nnetworkPolicy:\n  enabled: true\n",
		external: map[string][]string{"temporal-api-key": {"api-key"}},
		want: func(t *testing.T, ms manifests) {
			d := one[*appsv1.Deployment](t, ms)
			env := resolveEnv(t, ms, worker(t, d.Spec.Template.Spec))
			wantSecret(t, env, "TEMPORAL_API_KEY", "temporal-api-key", "api-key")
			if _, ok := env["TEMPORAL_TLS"]; ok {
				t.Errorf("TEMPORAL_TLS set; the worker turns TLS on for an API key by itself")
			}
			if slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "temporal-tls" }) {
				t.Errorf("a certificate volume without certificates")
			}
			if ports := egressPorts(one[*networkingv1.NetworkPolicy](t, ms)); !slices.Contains(ports, "7233/TCP") {
				t.Errorf("no egress to Temporal Cloud: %v", ports)
			}
		},
	},
	{
		name: "self-hosted temporal with a private CA",
		values: minimal + `temporal:
  address: 10.0.0.5:7233
  tls:
    enabled: true
    serverName: temporal.internal.example.com
    serverCA:
      existingConfigMap: temporal-ca
      key: ca.pem
    clientCert:
      existingSecret: temporal-client-tls
      certKey: client.pem
      keyKey: client-key.pem
`,
		external:           map[string][]string{"temporal-client-tls": {"client.pem", "client-key.pem"}},
		externalConfigMaps: map[string][]string{"temporal-ca": {"ca.pem"}},
		want: func(t *testing.T, ms manifests) {
			env := resolveEnv(t, ms, worker(t, one[*appsv1.Deployment](t, ms).Spec.Template.Spec))
			for name, want := range map[string]string{"TEMPORAL_TLS": "true", "TEMPORAL_TLS_SERVER_NAME": "temporal.internal.example.com"} {
				if env[name].value != want {
					t.Errorf("%s = %q, want %q", name, env[name].value, want)
				}
			}
			if _, ok := env["TEMPORAL_TLS_SERVER_CA_CERT_PATH"]; !ok {
				t.Errorf("no CA path")
			}
		},
	},
	{
		name:   "temporal off ignores its TLS settings",
		values: minimal + "temporal:\n  enabled: false\n  tls:\n    serverName: x.example.com\n    clientCert:\n      existingSecret: gone\n  apiKey:\n    existingSecret: gone\n",
		want: func(t *testing.T, ms manifests) {
			d := one[*appsv1.Deployment](t, ms)
			for name := range resolveEnv(t, ms, worker(t, d.Spec.Template.Spec)) {
				if strings.HasPrefix(name, "TEMPORAL_") && name != "TEMPORAL_ENABLED" && name != "TEMPORAL_ADDRESS" && name != "TEMPORAL_NAMESPACE" && name != "TEMPORAL_TASK_QUEUE" {
					t.Errorf("%s wired although Temporal is off", name)
				}
			}
		},
	},
	{
		name: "extra env and volumes with pod metadata and spreading",
		values: minimal + `extraEnv:
  - name: GOMEMLIMIT
    value: 400MiB
  - name: TICKETS_PAYMENT_TOKEN
    valueFrom:
      secretKeyRef:
        name: payments
        key: token
  - name: PGSSLROOTCERT
    value: /etc/db-ca/ca.crt
envFrom:
  - configMapRef:
      name: app-settings
  - secretRef:
      name: app-secrets
extraVolumes:
  - name: db-ca
    secret:
      secretName: db-ca
      items:
        - key: ca.crt
          path: ca.crt
extraVolumeMounts:
  - name: db-ca
    mountPath: /etc/db-ca
    readOnly: true
podAnnotations:
  example.com/owner: tickets
podLabels:
  team: tickets
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
  - maxSkew: 2
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: DoNotSchedule
    labelSelector:
      matchLabels:
        app.kubernetes.io/instance: factos
        app.kubernetes.io/component: worker
`,
		external:           map[string][]string{"payments": {"token"}, "app-secrets": nil, "db-ca": {"ca.crt"}},
		externalConfigMaps: map[string][]string{"app-settings": nil},
		extraVars:          []string{"GOMEMLIMIT", "TICKETS_PAYMENT_TOKEN", "PGSSLROOTCERT"},
		want: func(t *testing.T, ms manifests) {
			d := one[*appsv1.Deployment](t, ms)
			job := one[*batchv1.Job](t, ms)
			for what, c := range map[string]corev1.Container{"worker": worker(t, d.Spec.Template.Spec), "migration Job": job.Spec.Template.Spec.Containers[0]} {
				env := resolveEnv(t, ms, c)
				if env["GOMEMLIMIT"].value != "400MiB" || env["PGSSLROOTCERT"].value != "/etc/db-ca/ca.crt" {
					t.Errorf("%s: extraEnv literals missing: %+v %+v", what, env["GOMEMLIMIT"], env["PGSSLROOTCERT"])
				}
				wantSecret(t, env, "TICKETS_PAYMENT_TOKEN", "payments", "token")
				var from []string
				for _, ef := range c.EnvFrom {
					if ef.ConfigMapRef != nil {
						from = append(from, "ConfigMap/"+ef.ConfigMapRef.Name)
					}
					if ef.SecretRef != nil {
						from = append(from, "Secret/"+ef.SecretRef.Name)
					}
				}
				// The operator's sources come after the chart's ConfigMap,
				// so they override it.
				if n := len(from); n < 2 || from[n-2] != "ConfigMap/app-settings" || from[n-1] != "Secret/app-secrets" {
					t.Errorf("%s: envFrom %v, want the operator's sources last", what, from)
				}
				if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "db-ca" && m.MountPath == "/etc/db-ca" }) {
					t.Errorf("%s: extra volume not mounted: %+v", what, c.VolumeMounts)
				}
			}
			volume(t, job.Spec.Template.Spec, "db-ca")
			pod := d.Spec.Template
			if pod.Annotations["example.com/owner"] != "tickets" || pod.Annotations["checksum/config"] == "" || pod.Labels["team"] != "tickets" {
				t.Errorf("pod metadata %v %v", pod.Annotations, pod.Labels)
			}
			if job.Spec.Template.Labels["team"] != "" {
				t.Errorf("podLabels reach the migration Job's pods")
			}
			tsc := pod.Spec.TopologySpreadConstraints
			if len(tsc) != 2 || tsc[0].LabelSelector == nil || tsc[1].LabelSelector.MatchLabels["app.kubernetes.io/instance"] != "factos" || len(tsc[1].LabelSelector.MatchLabels) != 2 {
				t.Errorf("topologySpreadConstraints %+v: want the release's selector filled in where missing, the given one kept", tsc)
			}
		},
	},
	{
		name:   "alerts and dashboard",
		values: minimal + "prometheusRule:\n  enabled: true\n  labels:\n    release: kube-prometheus-stack\ngrafanaDashboard:\n  enabled: true\n",
		want: func(t *testing.T, ms manifests) {
			r := one[*prometheusRule](t, ms)
			if r.Labels["release"] != "kube-prometheus-stack" {
				t.Errorf("PrometheusRule labels %v", r.Labels)
			}
			if n := len(r.Spec.Groups[0].Rules); n != 10 {
				t.Errorf("%d alerts, want 10", n)
			}
			cm, ok := find[*corev1.ConfigMap](ms, "factos-factos-worker-dashboard")
			if !ok {
				t.Fatalf("no dashboard ConfigMap")
			}
			if cm.Labels["grafana_dashboard"] != "1" {
				t.Errorf("dashboard ConfigMap labels %v lack the sidecar's", cm.Labels)
			}
			if cm.Data["factos-worker.json"] != string(readDashboardFile(t)) {
				t.Errorf("the ConfigMap's dashboard differs from dashboards/factos-worker.json")
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
			checkReferences(t, ms, sc.external, sc.externalConfigMaps)
			checkSecurity(t, ms)
			checkContract(t, ms, mustSpec(t), sc.extraVars)
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
		{"temporal tls enabled as a string", minimal + "temporal:\n  tls:\n    enabled: \"yes\"\n", "/temporal/tls/enabled"},
		{"temporal client cert key typo", minimal + "temporal:\n  tls:\n    clientCert:\n      certkey: tls.crt\n", "'certkey' not allowed"},
		{"temporal api key secret with a bad name", minimal + "temporal:\n  apiKey:\n    existingSecret: My_Secret\n", "/temporal/apiKey/existingSecret"},
		{"extraEnv without a name", minimal + "extraEnv:\n  - value: x\n", "/extraEnv/0"},
		{"extraEnv field typo", minimal + "extraEnv:\n  - name: A\n    valu: x\n", "'valu' not allowed"},
		{"extraEnv number value", minimal + "extraEnv:\n  - name: A\n    value: 3\n", "/extraEnv/0/value"},
		{"envFrom field typo", minimal + "envFrom:\n  - secretref:\n      name: x\n", "'secretref' not allowed"},
		{"extraVolumeMounts without a path", minimal + "extraVolumeMounts:\n  - name: x\n", "/extraVolumeMounts/0"},
		{"extraVolumes without a name", minimal + "extraVolumes:\n  - emptyDir: {}\n", "/extraVolumes/0"},
		{"extraVolumes source typo", minimal + "extraVolumes:\n  - name: x\n    secrets:\n      secretName: y\n", "'secrets' not allowed"},
		{"extraVolumes with two sources", minimal + "extraVolumes:\n  - name: x\n    emptyDir: {}\n    secret:\n      secretName: y\n", "/extraVolumes/0"},
		{"spread without a topology key", minimal + "topologySpreadConstraints:\n  - maxSkew: 1\n    whenUnsatisfiable: ScheduleAnyway\n", "/topologySpreadConstraints/0"},
		{"alert for without a unit", minimal + "prometheusRule:\n  reactionLag:\n    for: \"10\"\n", "/prometheusRule/reactionLag/for"},
		{"alert quantile above 1", minimal + "prometheusRule:\n  reactionLag:\n    quantile: 1.5\n", "/prometheusRule/reactionLag/quantile"},
		{"alert selector with braces", minimal + "prometheusRule:\n  selector: '{job=\"x\"}'\n", "/prometheusRule/selector"},
		{"dashboard key typo", minimal + "grafanaDashboard:\n  enable: true\n", "'enable' not allowed"},
		// Templates.
		{"no database", "{}\n", "set database.existingSecret (preferred) or database.url"},
		{"temporal tls off with an api key", minimal + "temporal:\n  tls:\n    enabled: false\n  apiKey:\n    existingSecret: k\n", "temporal.tls.enabled=false, but TLS is needed by temporal.apiKey.existingSecret"},
		{"temporal tls off with a client certificate", minimal + "temporal:\n  tls:\n    enabled: false\n    clientCert:\n      existingSecret: c\n", "TLS is needed by temporal.tls.clientCert.existingSecret"},
		{"temporal CA twice", minimal + "temporal:\n  tls:\n    serverCA:\n      existingSecret: a\n      existingConfigMap: b\n", "not both"},
		{"extraEnv sets a chart variable", minimal + "extraEnv:\n  - name: LOG_LEVEL\n    value: debug\n", "extraEnv sets LOG_LEVEL"},
		{"extraEnv sets a chart secret", minimal + "extraEnv:\n  - name: DATABASE_URL\n    value: postgres://x@y/z\n", "extraEnv sets DATABASE_URL"},
		{"extraEnv sets the api key", minimal + "extraEnv:\n  - name: TEMPORAL_API_KEY\n    value: k\n", "extraEnv sets TEMPORAL_API_KEY"},
		{"podLabels override a selector label", minimal + "podLabels:\n  app.kubernetes.io/name: other\n", "podLabels sets app.kubernetes.io/name"},
		{"extra volume named like the chart's", minimal + "extraVolumes:\n  - name: tmp\n    emptyDir: {}\n", `extraVolumes names a volume "tmp"`},
		{"extra mount over the chart's", minimal + "extraVolumeMounts:\n  - name: x\n    mountPath: /etc/factos/temporal-tls\n", "mounts at /etc/factos/temporal-tls"},
		{"severity in alertLabels", minimal + "prometheusRule:\n  alertLabels:\n    severity: page\n", "alertLabels sets severity"},
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
		{"temporal server name", minimal, minimal + "temporal:\n  tls:\n    serverName: ns.acct.tmprl.cloud\n", true},
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
	for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		// Spreading counts the pods the selector picks: another release's
		// or the migration Job's would skew it.
		wantSelects("topologySpreadConstraint "+c.TopologyKey, c.LabelSelector, false)
		if s, err := metav1.LabelSelectorAsSelector(c.LabelSelector); err == nil && c.LabelSelector.MatchLabels["app.kubernetes.io/instance"] == "" {
			other := labels.Set(maps.Clone(d.Spec.Template.Labels))
			other["app.kubernetes.io/instance"] = "another-release"
			if s.Matches(other) {
				t.Errorf("topologySpreadConstraint %s: selector %v also picks another release's worker pods", c.TopologyKey, c.LabelSelector)
			}
		}
	}
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
func checkReferences(t *testing.T, ms manifests, external, externalConfigMaps map[string][]string) {
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
		// uses returns the check of one use of a Secret or a ConfigMap,
		// with the keys it reads (none: the whole object).
		uses := func(kind string, externals map[string][]string, lookup func(name string) (metav1.Object, func(key string) bool, bool)) func(what, name string, keys ...string) {
			return func(what, name string, keys ...string) {
				t.Helper()
				obj, has, ok := lookup(name)
				if !ok {
					got, isExternal := externals[name]
					for _, k := range keys {
						isExternal = isExternal && slices.Contains(got, k)
					}
					if !isExternal {
						t.Errorf("%s: %s reads %s %s %v, neither rendered nor an existing %s of the scenario", user, what, kind, name, keys, kind)
					}
					return
				}
				for _, k := range keys {
					if !has(k) {
						t.Errorf("%s: %s reads key %q that %s %s lacks", user, what, k, kind, name)
					}
				}
				hookOK(user, userHook, isHook, obj)
			}
		}
		secret := uses("Secret", external, func(name string) (metav1.Object, func(string) bool, bool) {
			s, ok := find[*corev1.Secret](ms, name)
			return s, func(k string) bool { _, has := s.Data[k]; return has }, ok
		})
		configMap := uses("ConfigMap", externalConfigMaps, func(name string) (metav1.Object, func(string) bool, bool) {
			cm, ok := find[*corev1.ConfigMap](ms, name)
			return cm, func(k string) bool { _, has := cm.Data[k]; return has }, ok
		})
		itemKeys := func(items []corev1.KeyToPath) []string {
			var keys []string
			for _, it := range items {
				keys = append(keys, it.Key)
			}
			return keys
		}
		for _, v := range pod.Spec.Volumes {
			what := "volume " + v.Name
			switch {
			case v.Secret != nil:
				secret(what, v.Secret.SecretName, itemKeys(v.Secret.Items)...)
			case v.ConfigMap != nil:
				configMap(what, v.ConfigMap.Name, itemKeys(v.ConfigMap.Items)...)
			case v.Projected != nil:
				for _, src := range v.Projected.Sources {
					switch {
					case src.Secret != nil:
						secret(what, src.Secret.Name, itemKeys(src.Secret.Items)...)
					case src.ConfigMap != nil:
						configMap(what, src.ConfigMap.Name, itemKeys(src.ConfigMap.Items)...)
					}
				}
			}
		}
		for _, c := range pod.Spec.Containers {
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					configMap("envFrom", ef.ConfigMapRef.Name)
				case ef.SecretRef != nil:
					// The chart itself wires every secret by secretKeyRef,
					// which says what variable it sets; an operator's own
					// Secret (envFrom) must exist.
					if _, rendered := find[*corev1.Secret](ms, ef.SecretRef.Name); rendered {
						t.Errorf("%s: envFrom the chart's Secret %s hides which variables it sets; use secretKeyRef", user, ef.SecretRef.Name)
					}
					secret("envFrom", ef.SecretRef.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					secret(e.Name, r.Name, r.Key)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					configMap(e.Name, r.Name, r.Key)
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
			continue // a Secret's variables are unknown here
		}
		cm, ok := find[*corev1.ConfigMap](ms, ef.ConfigMapRef.Name)
		if !ok {
			continue // an existing ConfigMap of the operator's: its variables are unknown here
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
			if cm, ok := find[*corev1.ConfigMap](ms, r.Name); ok {
				env[e.Name] = envSource{value: cm.Data[r.Key], literal: true, configMap: r.Name}
			} else {
				env[e.Name] = envSource{configMap: r.Name} // the operator's: value unknown
			}
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

// volume returns the pod's volume of that name.
func volume(t *testing.T, p corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	i := slices.IndexFunc(p.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	if i < 0 {
		t.Fatalf("no volume %s", name)
	}
	return p.Volumes[i]
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
func checkContract(t *testing.T, ms manifests, sp *workerSpec, extraVars []string) {

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
	env := checkEnv(t, "Deployment", ms, c, sp, extraVars)
	checkFiles(t, "Deployment", env, c, d.Spec.Template.Spec)
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
		checkFiles(t, "Job "+job.Name, checkEnv(t, "Job "+job.Name, ms, jc, sp, extraVars), jc, p)
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
func checkEnv(t *testing.T, what string, ms manifests, c corev1.Container, sp *workerSpec, extraVars []string) map[string]envSource {
	env := resolveEnv(t, ms, c)
	for name, src := range env {
		v, ok := sp.envVar(name)
		if !ok && slices.Contains(extraVars, name) {
			continue
		}
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

// checkFiles: a variable naming a file (…_PATH) points into a volume the
// container mounts, and to a file that volume holds when it lists its files
// (items of a Secret, a ConfigMap or a projection).
func checkFiles(t *testing.T, what string, env map[string]envSource, c corev1.Container, pod corev1.PodSpec) {
	t.Helper()
	for name, src := range env {
		if !strings.HasSuffix(name, "_PATH") || !src.literal {
			continue
		}
		var mount *corev1.VolumeMount
		for i, m := range c.VolumeMounts {
			if strings.HasPrefix(src.value, strings.TrimSuffix(m.MountPath, "/")+"/") {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Errorf("%s: %s=%s is in no volume the container mounts", what, name, src.value)
			continue
		}
		file := strings.TrimPrefix(src.value, strings.TrimSuffix(mount.MountPath, "/")+"/")
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
		if i < 0 {
			t.Errorf("%s: mount %s of a volume the pod lacks", what, mount.Name)
			continue
		}
		if files, listed := volumeFiles(pod.Volumes[i]); listed && !slices.Contains(files, file) {
			t.Errorf("%s: %s=%s, but volume %s holds only %v", what, name, src.value, mount.Name, files)
		}
	}
}

// volumeFiles lists the files a volume holds when its source lists them.
func volumeFiles(v corev1.Volume) (files []string, listed bool) {
	add := func(items []corev1.KeyToPath) {
		for _, it := range items {
			files = append(files, it.Path)
		}
		listed = listed || len(items) > 0
	}
	switch {
	case v.Secret != nil:
		add(v.Secret.Items)
	case v.ConfigMap != nil:
		add(v.ConfigMap.Items)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.Secret != nil:
				add(src.Secret.Items)
			case src.ConfigMap != nil:
				add(src.ConfigMap.Items)
			default:
				return nil, false // files the test cannot list
			}
		}
	}
	return files, listed
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
