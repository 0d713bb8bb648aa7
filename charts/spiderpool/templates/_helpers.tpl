{{/* Instance name: global.nameOverride, else "spiderpool". */}}
{{- define "spiderpool.name" -}}
{{- default "spiderpool" .Values.global.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "spiderpool.labels" -}}
app.kubernetes.io/name: {{ include "spiderpool.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "spiderpool-agent"). */}}
{{- define "spiderpool.selector" -}}
app.kubernetes.io/name: {{ include "spiderpool.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Annotations on every object (may be empty). */}}
{{- define "spiderpool.annotations" -}}
{{- with .Values.global.commonAnnotations }}
{{- toYaml . }}
{{- end }}
{{- end -}}

{{/* An image reference from an image block: (dict "root" $ "image" .Values.spiderpoolAgent.image). */}}
{{- define "spiderpool.image" -}}
{{- $registry := default .image.registry .root.Values.global.imageRegistryOverride -}}
{{- $ref := printf "%s/%s" $registry .image.repository -}}
{{- if not $registry }}{{ $ref = .image.repository }}{{ end -}}
{{- if .image.digest -}}
{{ $ref }}@{{ .image.digest }}
{{- else -}}
{{ $ref }}:{{ default .root.Chart.AppVersion .image.tag }}
{{- end -}}
{{- end -}}

{{/* Env for host-network pods that reach the API server at an explicit address. */}}
{{- define "spiderpool.apiserverEnv" -}}
{{- if .Values.global.k8sServiceHost }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.global.k8sServiceHost | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ required "global.k8sServicePort is required with global.k8sServiceHost" .Values.global.k8sServicePort | quote }}
{{- end }}
{{- end -}}

{{/* Directory of the IPAM socket on the node. */}}
{{- define "spiderpool.socketDir" -}}
{{- dir .Values.global.ipamUNIXSocketHostPath -}}
{{- end -}}

{{/* The node's CNI configuration written by cniConfig. */}}
{{- define "spiderpool.conflist" -}}
{{- $c := .Values.spiderpoolAgent.cniConfig -}}
{{- $ipam := dict "type" "spiderpool" "ipam_unix_socket_path" .Values.global.ipamUNIXSocketHostPath -}}
{{- if $c.defaultIPv4IPPool }}{{ $_ := set $ipam "default_ipv4_ippool" $c.defaultIPv4IPPool }}{{ end -}}
{{- if $c.defaultIPv6IPPool }}{{ $_ := set $ipam "default_ipv6_ippool" $c.defaultIPv6IPPool }}{{ end -}}
{{- $main := dict -}}
{{- if eq $c.mainPlugin "bridge" -}}
{{- $main = dict "type" "bridge" "bridge" $c.bridgeName "isGateway" $c.isGateway "ipMasq" $c.ipMasq "hairpinMode" $c.hairpinMode "ipam" $ipam -}}
{{- else if eq $c.mainPlugin "macvlan" -}}
{{- $main = dict "type" "macvlan" "master" (required "spiderpoolAgent.cniConfig.macvlanMaster is required with mainPlugin macvlan: the node's underlay interface" $c.macvlanMaster) "mode" "bridge" "ipam" $ipam -}}
{{- else -}}
{{- fail (printf "spiderpoolAgent.cniConfig.mainPlugin %q is not supported: use bridge or macvlan" $c.mainPlugin) -}}
{{- end -}}
{{- $plugins := list $main -}}
{{- /* The coordinator reads the SpiderCoordinator, which exists only with coordinator.enabled. */ -}}
{{- /* It asks the agent for them at the same socket as the IPAM plugin (upstream's coordinator knows only the
default path; ours reads ipamUnixSocketPath). */ -}}
{{- if and $c.coordinator .Values.coordinator.enabled }}{{ $plugins = append $plugins (dict "type" "coordinator" "ipamUnixSocketPath" .Values.global.ipamUNIXSocketHostPath) }}{{ end -}}
{{- dict "cniVersion" $c.cniVersion "name" $c.networkName "plugins" $plugins | toPrettyJson -}}
{{- end -}}
