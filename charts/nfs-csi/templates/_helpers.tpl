{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "nfs-csi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name. The release name when it already contains the
chart name, "<release>-<chart>" otherwise. Kept short enough that the longest
suffix ("-provisioner") still fits in 63 characters.
*/}}
{{- define "nfs-csi.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"name-version" for the helm.sh/chart label.
*/}}
{{- define "nfs-csi.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "nfs-csi.labels" -}}
helm.sh/chart: {{ include "nfs-csi.chart" . }}
app.kubernetes.io/name: {{ include "nfs-csi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nfs-csi
{{- end }}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "controller").
*/}}
{{- define "nfs-csi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nfs-csi.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Full labels of one component's objects and pods.
*/}}
{{- define "nfs-csi.componentLabels" -}}
{{ include "nfs-csi.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
"repository:tag" of an image value. Call with (dict "image" .Values.image.x "default" "tag").
*/}}
{{- define "nfs-csi.image" -}}
{{- printf "%s:%s" .image.repository (default .default .image.tag) }}
{{- end }}

{{/*
Names of the ServiceAccounts.
*/}}
{{- define "nfs-csi.controllerServiceAccountName" -}}
{{- default (printf "%s-controller" (include "nfs-csi.fullname" .)) .Values.serviceAccount.controller.name }}
{{- end }}

{{- define "nfs-csi.nodeServiceAccountName" -}}
{{- default (printf "%s-node" (include "nfs-csi.fullname" .)) .Values.serviceAccount.node.name }}
{{- end }}

{{/*
Directory on the node that holds the driver's socket, under the kubelet's
plugin directory, and the socket path the kubelet dials.
*/}}
{{- define "nfs-csi.pluginDir" -}}
{{- printf "%s/plugins/%s" (trimSuffix "/" .Values.kubeletDir) .Values.driverName }}
{{- end }}

{{/*
The controller's --cluster-id: .Values.clusterID, or "auto" when it is empty
(the default of earlier versions): the driver then reads the kube-system
Namespace's UID itself, so the ID does not depend on how the chart is
rendered (helm install, helm template, Argo CD, Flux, deploy/).
*/}}
{{- define "nfs-csi.clusterID" -}}
{{- .Values.clusterID | default "auto" }}
{{- end }}
