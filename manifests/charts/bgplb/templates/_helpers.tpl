{{/*
Labels of every object the chart renders: the two labels manifests/base uses plus
Helm's standard ones.
*/}}
{{- define "bgplb.labels" -}}
app.kubernetes.io/name: bgplb
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/*
The bgplbd pods' labels; also the DaemonSet's selector, identical to manifests/base's
so a cluster can move between the two without recreating the DaemonSet.
*/}}
{{- define "bgplb.selectorLabels" -}}
app.kubernetes.io/name: bgplb
app.kubernetes.io/component: bgplbd
{{- end -}}

{{/*
The image reference: repository@digest when image.digest is set, else
repository:tag with the chart's appVersion as the default tag.
*/}}
{{- define "bgplb.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}
