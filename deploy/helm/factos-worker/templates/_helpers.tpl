{{/*
Names. Kubernetes names and label values stop at 63 characters; names with a
suffix cut the full name first, so that suffixes never collide.
*/}}
{{- define "factos-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "factos-worker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "factos-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "factos-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "factos-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object. The component label tells the worker pods from the
migration Job's pods; selectors use it so a Service never selects a Job pod.
*/}}
{{- define "factos-worker.labels" -}}
helm.sh/chart: {{ include "factos-worker.chart" . }}
{{ include "factos-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ include "factos-worker.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: factos
{{- end }}

{{- define "factos-worker.workerSelectorLabels" -}}
{{ include "factos-worker.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "factos-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "factos-worker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image. A digest pins the exact image and wins over the tag.
*/}}
{{- define "factos-worker.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "factos-worker.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "factos-worker.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The worker's database Secret: an existing one, or the chart's, made from
database.url. Rendering fails when neither is given.
*/}}
{{- define "factos-worker.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else if .Values.database.url }}
{{- printf "%s-database" (include "factos-worker.fullname" . | trunc 54 | trimSuffix "-") }}
{{- else }}
{{- fail "factos-worker: set database.existingSecret (preferred) or database.url" }}
{{- end }}
{{- end }}

{{- define "factos-worker.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- required "factos-worker: database.existingSecretKey must not be empty" .Values.database.existingSecretKey }}
{{- else }}
{{- print "database-url" }}
{{- end }}
{{- end }}

{{/*
The migration Job's database Secret. Precedence: migrations.existingSecret,
migrations.databaseUrl, database.existingSecret, database.url. A URL becomes a
Secret of the Job's own (-migrations): with hooks on it must exist before the
release's ordinary resources, so it is a hook too.
*/}}
{{- define "factos-worker.migrationsUrl" -}}
{{- if not .Values.migrations.existingSecret }}
{{- if .Values.migrations.databaseUrl }}
{{- .Values.migrations.databaseUrl }}
{{- else if not .Values.database.existingSecret }}
{{- .Values.database.url }}
{{- end }}
{{- end }}
{{- end }}

{{- define "factos-worker.migrationsSecretName" -}}
{{- if .Values.migrations.existingSecret }}
{{- .Values.migrations.existingSecret }}
{{- else if include "factos-worker.migrationsUrl" . }}
{{- printf "%s-migrations" (include "factos-worker.fullname" . | trunc 52 | trimSuffix "-") }}
{{- else }}
{{- include "factos-worker.databaseSecretName" . }}
{{- end }}
{{- end }}

{{- define "factos-worker.migrationsSecretKey" -}}
{{- if .Values.migrations.existingSecret }}
{{- required "factos-worker: migrations.existingSecretKey must not be empty" .Values.migrations.existingSecretKey }}
{{- else if include "factos-worker.migrationsUrl" . }}
{{- print "database-url" }}
{{- else }}
{{- include "factos-worker.databaseSecretKey" . }}
{{- end }}
{{- end }}

{{/*
River UI credentials: needed when the UI is on, unless unauthenticated access
is explicitly allowed. Empty output: no credentials are wired.
*/}}
{{- define "factos-worker.riveruiSecretName" -}}
{{- if .Values.riverui.enabled }}
{{- if .Values.riverui.existingSecret }}
{{- .Values.riverui.existingSecret }}
{{- else if and .Values.riverui.username .Values.riverui.password }}
{{- printf "%s-riverui" (include "factos-worker.fullname" . | trunc 55 | trimSuffix "-") }}
{{- else if not .Values.riverui.allowUnauthenticated }}
{{- fail "factos-worker: riverui.enabled needs riverui.existingSecret or riverui.username and riverui.password (or riverui.allowUnauthenticated=true, for local development only)" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Whether a PodDisruptionBudget is rendered: forced by podDisruptionBudget.enabled,
else on whenever more than one pod can run.
*/}}
{{- define "factos-worker.pdbEnabled" -}}
{{- $pdb := .Values.podDisruptionBudget.enabled }}
{{- if kindIs "bool" $pdb }}
{{- if $pdb }}true{{ end }}
{{- else if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
The port of temporal.address, for the NetworkPolicy's egress rule.
*/}}
{{- define "factos-worker.temporalPort" -}}
{{- $parts := splitList ":" .Values.temporal.address }}
{{- if lt (len $parts) 2 }}
{{- fail "factos-worker: temporal.address must be host:port" }}
{{- end }}
{{- last $parts }}
{{- end }}

{{- define "factos-worker.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdownTimeoutSeconds .Values.terminationGraceExtraSeconds }}
{{- end }}

{{/*
Hook annotations of the migration Job and of the Secret it reads. The Secret's
lower weight makes it exist before the Job; it is deleted once the hooks have
succeeded, so the migration credentials do not linger. Takes (dict "ctx" $
"weight" N "deletePolicy" "...").
*/}}
{{- define "factos-worker.migrationHook" -}}
{{- if .ctx.Values.migrations.hooks -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: {{ .deletePolicy }}
{{- end }}
{{- end }}

{{/*
Temporal TLS files. The client certificate, its key and the server CA are
projected into one read-only directory; the worker finds them through the
TEMPORAL_TLS_*_PATH variables of the ConfigMap. A projected Secret is updated
in place when the Secret changes (no subPath), and the worker rereads the
client certificate at each new connection.
*/}}
{{- define "factos-worker.temporalTLSDir" -}}
/etc/factos/temporal-tls
{{- end }}

{{- define "factos-worker.temporalServerCA" -}}
{{- $ca := .Values.temporal.tls.serverCA }}
{{- if and .Values.temporal.enabled (or $ca.existingSecret $ca.existingConfigMap) }}true{{ end }}
{{- end }}

{{- define "factos-worker.temporalClientCert" -}}
{{- if and .Values.temporal.enabled .Values.temporal.tls.clientCert.existingSecret }}true{{ end }}
{{- end }}

{{- define "factos-worker.temporalTLSVolume" -}}
{{- if or (include "factos-worker.temporalServerCA" .) (include "factos-worker.temporalClientCert" .) }}true{{ end }}
{{- end }}

{{- define "factos-worker.temporalAPIKeySecret" -}}
{{- if .Values.temporal.enabled }}
{{- .Values.temporal.apiKey.existingSecret }}
{{- end }}
{{- end }}

{{/*
Variables the chart sets from values, in its ConfigMap or as env entries.
extraEnv may not set them (envFrom may: it is below the chart's ConfigMap
only by choice of the operator, and below every env entry).
*/}}
{{- define "factos-worker.managedEnv" -}}
{{- $cm := include (print .Template.BasePath "/configmap.yaml") . | fromYaml }}
{{- $names := list "DATABASE_URL" "RIVERUI_USERNAME" "RIVERUI_PASSWORD" "TEMPORAL_API_KEY" "TEMPORAL_TLS" "TEMPORAL_TLS_SERVER_NAME" "TEMPORAL_TLS_SERVER_CA_CERT_PATH" "TEMPORAL_TLS_CLIENT_CERT_PATH" "TEMPORAL_TLS_CLIENT_KEY_PATH" }}
{{- range $k, $_ := $cm.data }}
{{- $names = append $names $k }}
{{- end }}
{{- $names | uniq | sortAlpha | toJson }}
{{- end }}

{{/*
Checks of values that the schema cannot express. Included by the Deployment;
renders nothing.
*/}}
{{- define "factos-worker.validate" -}}
{{- $t := .Values.temporal }}
{{- if and $t.enabled (kindIs "bool" $t.tls.enabled) (not $t.tls.enabled) }}
{{- $set := list }}
{{- if $t.apiKey.existingSecret }}{{ $set = append $set "temporal.apiKey.existingSecret" }}{{ end }}
{{- if $t.tls.clientCert.existingSecret }}{{ $set = append $set "temporal.tls.clientCert.existingSecret" }}{{ end }}
{{- if $t.tls.serverCA.existingSecret }}{{ $set = append $set "temporal.tls.serverCA.existingSecret" }}{{ end }}
{{- if $t.tls.serverCA.existingConfigMap }}{{ $set = append $set "temporal.tls.serverCA.existingConfigMap" }}{{ end }}
{{- if $t.tls.serverName }}{{ $set = append $set "temporal.tls.serverName" }}{{ end }}
{{- if $set }}
{{- fail (printf "factos-worker: temporal.tls.enabled=false, but TLS is needed by %s (an API key would travel in plain text; Temporal Cloud accepts TLS only): remove temporal.tls.enabled or set it true" (join ", " $set)) }}
{{- end }}
{{- end }}
{{- if and $t.tls.serverCA.existingSecret $t.tls.serverCA.existingConfigMap }}
{{- fail "factos-worker: set temporal.tls.serverCA.existingSecret or temporal.tls.serverCA.existingConfigMap, not both" }}
{{- end }}
{{- $managed := include "factos-worker.managedEnv" . | fromJsonArray }}
{{- range .Values.extraEnv }}
{{- if has .name $managed }}
{{- fail (printf "factos-worker: extraEnv sets %s, which the chart sets from its values: set the value instead (the chart's README maps variables to values)" .name) }}
{{- end }}
{{- end }}
{{- $chartLabels := include "factos-worker.labels" . | fromYaml }}
{{- $_ := set $chartLabels "app.kubernetes.io/component" "worker" }}
{{- range $k, $_ := .Values.podLabels }}
{{- if hasKey $chartLabels $k }}
{{- fail (printf "factos-worker: podLabels sets %s, a label the chart sets (its selectors use some)" $k) }}
{{- end }}
{{- end }}
{{- if hasKey .Values.prometheusRule.alertLabels "severity" }}
{{- fail "factos-worker: prometheusRule.alertLabels sets severity; set each alert's severity instead (prometheusRule.<alert>.severity)" }}
{{- end }}
{{- range .Values.extraVolumes }}
{{- if has .name (list "tmp" "temporal-tls") }}
{{- fail (printf "factos-worker: extraVolumes names a volume %q, which the chart uses" .name) }}
{{- end }}
{{- end }}
{{- range .Values.extraVolumeMounts }}
{{- if has .mountPath (list "/tmp" (include "factos-worker.temporalTLSDir" $)) }}
{{- fail (printf "factos-worker: extraVolumeMounts mounts at %s, where the chart mounts its own volume" .mountPath) }}
{{- end }}
{{- end }}
{{- end }}
