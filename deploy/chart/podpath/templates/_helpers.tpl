{{/*
The prefix of every object's name: the release name, with "-podpath" unless it already says
podpath (so `helm install podpath` gives "podpath", not "podpath-podpath"). 63 characters at
most: object names end up in label values.
*/}}
{{- define "podpath.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "podpath" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-podpath" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels that select this release's agents (both components). */}}
{{- define "podpath.selectorLabels" -}}
app.kubernetes.io/name: podpath
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The standard labels every object carries. */}}
{{- define "podpath.labels" -}}
{{ include "podpath.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: podpath
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "podpath.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
One agent DaemonSet. Called with a dict: root (the chart's context), component (pod-agent or
host-agent), role (pod or host).
*/}}
{{- define "podpath.daemonset" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $selector := printf "app.kubernetes.io/name=podpath,app.kubernetes.io/instance=%s,app.kubernetes.io/component=%s" $root.Release.Name .component -}}
{{- $host := eq .role "host" -}}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ include "podpath.fullname" $root }}-{{ .role }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "podpath.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  selector:
    matchLabels:
      {{- include "podpath.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ .component }}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      # A monitor going quiet on a few nodes at a time is fine; on all of them it is blind.
      maxUnavailable: 10%
  template:
    metadata:
      labels:
        {{- include "podpath.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
    spec:
      serviceAccountName: {{ include "podpath.fullname" $root }}
      # The monitor watches its peers' Pods and the nodes through the API server.
      automountServiceAccountToken: true
      {{- if $host }}
      hostNetwork: true
      # Still resolve cluster names from the host network.
      dnsPolicy: ClusterFirstWithHostNet
      {{- else }}
      # Admissible under the "restricted" Pod Security level: UDP probes with Don't Fragment
      # need no capability.
      securityContext:
        runAsNonRoot: true
        runAsUser: 65534
        runAsGroup: 65534
        seccompProfile:
          type: RuntimeDefault
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: agent
          image: {{ include "podpath.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          # The image's entrypoint is /podpath: arguments only.
          args:
            - agent
            - --mode
            - monitor
            - --role
            - {{ .role }}
            - --listen
            - {{ printf "0.0.0.0:%v" $v.port | quote }}
            - --name
            - $(NODE_NAME)
            - --namespace
            - $(POD_NAMESPACE)
            - --selector
            - {{ $selector | quote }}
            - --period
            - {{ $v.monitor.period | quote }}
            - --rate
            - {{ $v.monitor.rate | quote }}
            - --warmup
            - {{ $v.monitor.warmup | quote }}
            - --facts-interval
            - {{ $v.monitor.factsInterval | quote }}
            - --service-account-dir
            - /var/run/secrets/kubernetes.io/serviceaccount
          # fieldRef only: no configMapKeyRef or secretKeyRef to keep in step.
          env:
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
          ports:
            - name: agent
              containerPort: {{ $v.port }}
              protocol: TCP
            - name: probe
              containerPort: {{ $v.port }}
              protocol: UDP
          readinessProbe:
            httpGet:
              path: /healthz
              port: agent
            periodSeconds: 10
          livenessProbe:
            httpGet:
              path: /healthz
              port: agent
            # A stuck agent is restarted, a slow start is not.
            initialDelaySeconds: 10
            periodSeconds: 20
            failureThreshold: 3
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- if $host }}
            # Root for BIRD's socket (root's, mode 0660), but no capability at all: UDP
            # probes with Don't Fragment need none.
            runAsUser: 0
            runAsGroup: 0
            runAsNonRoot: false
            capabilities:
              drop: [ALL]
            {{- else }}
            capabilities:
              drop: [ALL]
            {{- end }}
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            seccompProfile:
              type: RuntimeDefault
          {{- if $host }}
          volumeMounts:
            - name: calico-run
              mountPath: /var/run/calico
              readOnly: true
            - name: calico-lib
              mountPath: /var/lib/calico
              readOnly: true
          {{- end }}
      {{- if $host }}
      volumes:
        # BIRD's control socket (bird.ctl) and Felix's state. Type "" checks nothing, so the
        # agent starts on nodes without Calico too (it reports BIRD as absent); Directory would
        # keep it from starting there and DirectoryOrCreate would litter the host.
        - name: calico-run
          hostPath:
            path: /var/run/calico
            type: ""
        # /var/lib/calico/mtu: the Pod MTU Felix picked.
        - name: calico-lib
          hostPath:
            path: /var/lib/calico
            type: ""
      {{- end }}
{{- end -}}
