{{/* The Kafka bootstrap address, namespace-qualified (KEDA resolves it from its own namespace). */}}
{{- define "harclip.kafkaBootstrap" -}}
{{- if .Values.kafka.bundled -}}
harclip-kafka-kafka-bootstrap.{{ .Release.Namespace }}.svc:9092
{{- else -}}
{{- required "kafka.bootstrap is required when kafka.bundled is false" .Values.kafka.bootstrap -}}
{{- end -}}
{{- end -}}
