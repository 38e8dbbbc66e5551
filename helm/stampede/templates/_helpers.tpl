{{/*
Names, labels and the pieces every Stampede pod shares.
*/}}

{{- define "stampede.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stampede.fullname" -}}
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

{{/* The name of one component's objects: <fullname>-web. */}}
{{- define "stampede.componentName" -}}
{{- printf "%s-%s" (include "stampede.fullname" .root | trunc 52 | trimSuffix "-") .component }}
{{- end }}

{{- define "stampede.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stampede.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stampede.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stampede.labels" -}}
helm.sh/chart: {{ include "stampede.chart" . }}
{{ include "stampede.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stampede
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component's objects; call with (dict "root" $ "component" "web"). */}}
{{- define "stampede.componentLabels" -}}
{{ include "stampede.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "stampede.componentSelectorLabels" -}}
{{ include "stampede.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "stampede.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stampede.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "stampede.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The public host: ingress.host, else WEB_DOMAIN, else LOCAL_DOMAIN. */}}
{{- define "stampede.host" -}}
{{- $host := .Values.ingress.host | default .Values.config.webDomain | default .Values.config.localDomain }}
{{- if contains ":" $host }}
{{- fail (printf "ingress.host %q has a port: set ingress.host to the bare host name" $host) }}
{{- end }}
{{- $host }}
{{- end }}

{{/* The port each service listens on (its default PORT, set explicitly). */}}
{{- define "stampede.port" -}}
{{- $ports := dict "web" 3000 "streaming" 4000 "delivery" 4001 "media" 4002 }}
{{- get $ports . }}
{{- end }}

{{/* A secret's name: the item's, else secrets.existingSecret. */}}
{{- define "stampede.secretName" -}}
{{- $name := .item.name | default .root.Values.secrets.existingSecret }}
{{- if not $name }}
{{- fail (printf "secrets.%s.name or secrets.existingSecret must name an existing Secret" .what) }}
{{- end }}
{{- $name }}
{{- end }}

{{/* Where every container finds tls.caBundle's bundle. */}}
{{- define "stampede.caBundle.dir" -}}
/etc/stampede/tls
{{- end }}
{{- define "stampede.caBundle.path" -}}
{{ include "stampede.caBundle.dir" . }}/ca.pem
{{- end }}

{{/*
tls.caBundle, checked: the variables its flags set, as a comma-separated list (empty when every
flag is off, and then nothing is mounted).
*/}}
{{- define "stampede.caBundle.vars" -}}
{{- $b := .Values.tls.caBundle }}
{{- if and $b.existingConfigMap $b.existingSecret }}
{{- fail (printf "tls.caBundle: set existingConfigMap (%q) or existingSecret (%q), not both" $b.existingConfigMap $b.existingSecret) }}
{{- end }}
{{- $on := list }}
{{- $vars := list }}
{{- if $b.redis }}{{ $on = append $on "redis" }}{{ $vars = append $vars "REDIS_TLS_CA_FILE" }}{{ end }}
{{- if $b.amqp }}{{ $on = append $on "amqp" }}{{ $vars = append $vars "AMQP_TLS_CA_FILE" }}{{ end }}
{{- if $b.otlp }}{{ $on = append $on "otlp" }}{{ $vars = append $vars "OTEL_EXPORTER_OTLP_CERTIFICATE" }}{{ end }}
{{- if and $on (not (or $b.existingConfigMap $b.existingSecret)) }}
{{- fail (printf "tls.caBundle.%s %s true, but no CA bundle is named: set tls.caBundle.existingConfigMap or tls.caBundle.existingSecret to the ConfigMap or Secret holding it (key tls.caBundle.key, %q)" (join " and tls.caBundle." $on) (ternary "is" "are" (eq (len $on) 1)) $b.key) }}
{{- end }}
{{- $otlp := .Values.config.otlpEndpoint }}
{{- if and $b.otlp $otlp (not (hasPrefix "https://" $otlp)) }}
{{- fail (printf "tls.caBundle.otlp is true, but config.otlpEndpoint %q is not https://… (Stampede would exit with status 2)" $otlp) }}
{{- end }}
{{- join "," $vars }}
{{- end }}

{{/*
The environment of every Stampede container: plain configuration, secrets by reference, then the
component's own variables. Call with (dict "root" $ "component" "web" "port" 3000); the
migrations Job passes no port.
*/}}
{{- define "stampede.env" -}}
{{- $v := .root.Values }}
{{- if not $v.config.localDomain }}
{{- fail "config.localDomain (LOCAL_DOMAIN) is required" }}
{{- end }}
{{- if .port }}
- name: PORT
  value: {{ .port | quote }}
{{- end }}
- name: BIND
  value: "0.0.0.0"
- name: LOCAL_DOMAIN
  value: {{ $v.config.localDomain | quote }}
{{- with $v.config.webDomain }}
- name: WEB_DOMAIN
  value: {{ . | quote }}
{{- end }}
- name: LOCAL_HTTPS
  value: {{ $v.config.localHttps | quote }}
{{- with $v.config.trustedProxyIp }}
- name: TRUSTED_PROXY_IP
  value: {{ . | quote }}
{{- end }}
- name: LOG_FORMAT
  value: {{ $v.config.logFormat | quote }}
- name: RUST_LOG
  value: {{ $v.config.rustLog | quote }}
- name: SHUTDOWN_TIMEOUT
  value: {{ $v.config.shutdownTimeoutSeconds | quote }}
{{- with $v.config.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- $caVars := include "stampede.caBundle.vars" .root | splitList "," | compact }}
{{- $caPath := include "stampede.caBundle.path" .root }}
{{- range $caVars }}
- name: {{ . }}
  value: {{ $caPath | quote }}
{{- end }}
- name: AMQP_QUEUE_PREFIX
  value: {{ $v.queue.prefix | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.databaseUrl "what" "databaseUrl") }}
      key: {{ $v.secrets.databaseUrl.key }}
{{- if $v.secrets.replicaDatabaseUrl.enabled }}
- name: REPLICA_DB_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.replicaDatabaseUrl "what" "replicaDatabaseUrl") }}
      key: {{ $v.secrets.replicaDatabaseUrl.key }}
{{- end }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.redisUrl "what" "redisUrl") }}
      key: {{ $v.secrets.redisUrl.key }}
- name: AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.amqpUrl "what" "amqpUrl") }}
      key: {{ $v.secrets.amqpUrl.key }}
{{- if $v.storage.s3.enabled }}
{{- if not $v.storage.s3.bucket }}
{{- fail "storage.s3.bucket (S3_BUCKET) is required when storage.s3.enabled" }}
{{- end }}
- name: S3_ENABLED
  value: "true"
- name: S3_BUCKET
  value: {{ $v.storage.s3.bucket | quote }}
{{- with $v.storage.s3.endpoint }}
- name: S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: S3_REGION
  value: {{ $v.storage.s3.region | quote }}
{{- with $v.storage.s3.forcePathStyle }}
- name: S3_FORCE_PATH_STYLE
  value: {{ . | quote }}
{{- end }}
{{- with $v.storage.s3.aliasHost }}
- name: S3_ALIAS_HOST
  value: {{ . | quote }}
- name: S3_PROTOCOL
  value: {{ $v.storage.s3.protocol | quote }}
{{- end }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.s3 "what" "s3") }}
      key: {{ $v.secrets.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.s3 "what" "s3") }}
      key: {{ $v.secrets.s3.secretAccessKeyKey }}
{{- else }}
- name: S3_ENABLED
  value: "false"
- name: PAPERCLIP_ROOT_PATH
  value: /var/lib/stampede/public/system
{{- end }}
{{- with $v.storage.cdnHost }}
- name: CDN_HOST
  value: {{ . | quote }}
{{- end }}
{{- if $v.smtp.server }}
- name: SMTP_SERVER
  value: {{ $v.smtp.server | quote }}
- name: SMTP_PORT
  value: {{ $v.smtp.port | quote }}
{{- with $v.smtp.fromAddress }}
- name: SMTP_FROM_ADDRESS
  value: {{ . | quote }}
{{- end }}
- name: SMTP_ENABLE_STARTTLS
  value: {{ $v.smtp.enableStarttls | quote }}
{{- if $v.smtp.auth }}
- name: SMTP_LOGIN
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.smtp "what" "smtp") }}
      key: {{ $v.secrets.smtp.loginKey }}
- name: SMTP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.smtp "what" "smtp") }}
      key: {{ $v.secrets.smtp.passwordKey }}
{{- end }}
{{- end }}
{{- if $v.secrets.vapid.enabled }}
- name: VAPID_PRIVATE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.vapid "what" "vapid") }}
      key: {{ $v.secrets.vapid.privateKeyKey }}
- name: VAPID_PUBLIC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "stampede.secretName" (dict "root" .root "item" $v.secrets.vapid "what" "vapid") }}
      key: {{ $v.secrets.vapid.publicKeyKey }}
{{- end }}
{{- $own := dict }}
{{- if .component }}
{{- $own = (get $v .component).env | default dict }}
{{- end }}
{{- range $name, $value := $v.config.env }}
{{- if not (hasKey $own $name) }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- range $name, $value := $own }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- range $v.extraEnv }}
{{- if has .name $caVars }}
{{- fail (printf "extraEnv sets %s, which the chart sets itself while tls.caBundle's flag for it is on" .name) }}
{{- end }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every pod has: /tmp, media storage without S3, tls.caBundle's CA bundle, and the
operator's. */}}
{{- define "stampede.volumes" -}}
{{- $v := .Values }}
- name: tmp
  emptyDir:
    {{- with $v.tmp.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ $v.tmp.sizeLimit }}
{{- if not $v.storage.s3.enabled }}
- name: media
{{- if $v.storage.local.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ $v.storage.local.existingClaim }}
{{- else if $v.storage.local.allowEmptyDir }}
  emptyDir: {}
{{- else }}
{{- fail "storage: enable storage.s3, or set storage.local.existingClaim (a ReadWriteMany claim); storage.local.allowEmptyDir is for trying the chart only" }}
{{- end }}
{{- end }}
{{- if include "stampede.caBundle.vars" . }}
{{- $b := $v.tls.caBundle }}
- name: tls-ca-bundle
{{- if $b.existingConfigMap }}
  configMap:
    name: {{ $b.existingConfigMap }}
{{- else }}
  secret:
    secretName: {{ $b.existingSecret }}
{{- end }}
    items:
      - key: {{ $b.key | quote }}
        path: ca.pem
{{- end }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "stampede.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if not .Values.storage.s3.enabled }}
- name: media
  mountPath: /var/lib/stampede/public/system
{{- end }}
{{- if include "stampede.caBundle.vars" . }}
- name: tls-ca-bundle
  mountPath: {{ include "stampede.caBundle.dir" . }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* terminationGracePeriodSeconds: preStop sleep + SHUTDOWN_TIMEOUT + the 5 s the process
gives itself after it + 5 s of margin. */}}
{{- define "stampede.gracePeriod" -}}
{{- add .Values.podDefaults.preStopSleepSeconds .Values.config.shutdownTimeoutSeconds 10 }}
{{- end }}
