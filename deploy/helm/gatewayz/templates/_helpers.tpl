{{/* Names and labels shared by the templates. */}}

{{- define "gatewayz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource name: the release name, with the chart's unless it holds it. */}}
{{- define "gatewayz.fullname" -}}
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

{{- define "gatewayz.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gatewayz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatewayz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gatewayz.labels" -}}
helm.sh/chart: {{ include "gatewayz.chart" . }}
{{ include "gatewayz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Bitnami Redis subchart's name for this release (its common.names.fullname). */}}
{{- define "gatewayz.redisFullname" -}}
{{- if .Values.redis.fullnameOverride }}
{{- .Values.redis.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains "redis" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-redis" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The scrape endpoints of the ServiceMonitor and of the PodMonitor (both name the port `http`):
one per metric category, each relabelled to its own job as in docs/prometheus.yml.
*/}}
{{- define "gatewayz.scrapeEndpoints" -}}
{{- range .Values.metrics.categories }}
- port: http
  path: /prometheus/metrics/{{ .name }}
  interval: {{ .interval | default $.Values.metrics.interval }}
  {{- if $.Values.metrics.bearerTokenSecret.name }}
  authorization:
    type: Bearer
    credentials:
      name: {{ $.Values.metrics.bearerTokenSecret.name }}
      key: {{ $.Values.metrics.bearerTokenSecret.key }}
  {{- end }}
  relabelings:
    - action: replace
      targetLabel: job
      replacement: gatewayz-{{ .name }}
  {{- if .keep }}
  metricRelabelings:
    - sourceLabels: [__name__]
      regex: {{ .keep | quote }}
      action: keep
  {{- end }}
{{- end }}
{{- end }}
