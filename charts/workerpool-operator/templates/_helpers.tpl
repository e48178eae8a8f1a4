{{/* Name of the chart (object label app.kubernetes.io/name). */}}
{{- define "workerpool-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: prefix of every object name. */}}
{{- define "workerpool-operator.fullname" -}}
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

{{- define "workerpool-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workerpool-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "workerpool-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "workerpool-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: temporal-workerpools
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "workerpool-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "workerpool-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "workerpool-operator.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}{{ $repo = printf "%s/%s" .Values.image.registry $repo }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The generated RBAC rules (files/rbac.yaml, from workerpool_operator/kinds.py). */}}
{{- define "workerpool-operator.rbacData" -}}
{{- .Files.Get "files/rbac.yaml" }}
{{- end }}

{{/* grants.dnsPodLabels as k=v,k=v (sorted) for WORKERPOOL_DNS_POD_LABELS. */}}
{{- define "workerpool-operator.dnsPodLabels" -}}
{{- $out := list -}}
{{- range $k, $v := .Values.grants.dnsPodLabels -}}
{{- $out = append $out (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
