package check

import (
	"errors"
	"strings"
	"testing"
)

// fixture is a small set of manifests that passes every check: a worker scaled by KEDA, the api
// with its Service, their PodDisruptionBudgets and NetworkPolicies. TestChecksCatch breaks it one
// way at a time.
const fixture = `apiVersion: v1
kind: Secret
metadata:
  name: nats-worker
  namespace: jetflow
stringData:
  worker-password: example
  worker-hash: $2a$04$n0Qt4zdYux6dztuQ.0.p.OBKjIZXkvJUQcyQJLqNoXX/.W1JEBQv.
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: jetflow-worker
  namespace: jetflow
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: jetflow-worker
  template:
    metadata:
      labels:
        app.kubernetes.io/name: jetflow-worker
        app.kubernetes.io/part-of: jetflow
    spec:
      terminationGracePeriodSeconds: 30
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
      containers:
        - name: worker
          image: example.com/jetflow:v1.2.3
          args: ["worker", "--health-addr", ":8081"]
          env:
            - name: NATS_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: nats-worker
                  key: worker-password
          ports:
            - name: health
              containerPort: 8081
          resources:
            requests: {cpu: 100m, memory: 64Mi}
            limits: {cpu: "1", memory: 128Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          livenessProbe:
            httpGet: {path: /livez, port: health}
          readinessProbe:
            httpGet: {path: /readyz, port: health}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: jetflow-api
  namespace: jetflow
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: jetflow-api
  template:
    metadata:
      labels:
        app.kubernetes.io/name: jetflow-api
        app.kubernetes.io/part-of: jetflow
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
      containers:
        - name: api
          image: example.com/jetflow@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
          ports:
            - name: http
              containerPort: 7071
            - name: health
              containerPort: 8081
          resources:
            requests: {cpu: 100m, memory: 64Mi}
            limits: {cpu: "1", memory: 128Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          livenessProbe:
            httpGet: {path: /livez, port: health}
          readinessProbe:
            httpGet: {path: /readyz, port: 8081}
---
apiVersion: v1
kind: Service
metadata:
  name: jetflow-api
  namespace: jetflow
spec:
  selector:
    app.kubernetes.io/name: jetflow-api
  ports:
    - name: http
      port: 80
      targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: nats-headless
  namespace: jetflow
spec:
  clusterIP: None
  selector:
    app.kubernetes.io/name: jetflow-worker
  ports:
    - name: monitor
      port: 8222
      targetPort: health
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: jetflow-worker
  namespace: jetflow
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: jetflow-worker
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: jetflow-api
  namespace: jetflow
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: jetflow-api
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: jetflow-worker
  namespace: jetflow
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: jetflow-worker
  policyTypes: ["Ingress"]
  ingress:
    - from:
        - podSelector: {}
      ports:
        - port: health
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: jetflow-api
  namespace: jetflow
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: jetflow-api
  policyTypes: ["Ingress"]
  ingress:
    - ports:
        - port: http
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: jetflow-worker
  namespace: jetflow
spec:
  scaleTargetRef:
    name: jetflow-worker
  minReplicaCount: 2
  maxReplicaCount: 10
  triggers:
    - type: nats-jetstream
      metadata:
        natsServerMonitoringEndpoint: nats-headless.jetflow.svc.cluster.local:8222
        account: $G
        stream: JETFLOW_ACT
        consumer: activity-ApproveBudget
        lagThreshold: "100"
    - type: cpu
      metricType: Utilization
      metadata:
        value: "70"
`

// check decodes and checks manifests, returning every error.
func check(manifests string, env overlayEnv) []error {
	objs, errs := decodeAll([]byte(manifests))
	return append(errs, checkObjects(objs, env)...)
}

// TestFixturePasses: the fixture is good, so that each case of TestChecksCatch fails for its
// own reason only.
func TestFixturePasses(t *testing.T) {
	for _, err := range check(fixture, overlayEnv{Activities: []string{"ApproveBudget"}}) {
		t.Error(err)
	}
}

// TestChecksCatch breaks the fixture in one way per case and expects the checks to say so.
func TestChecksCatch(t *testing.T) {
	// dropDoc removes the YAML document containing s.
	dropDoc := func(s string) func(string) string {
		return func(m string) string {
			docs := strings.Split(m, "\n---\n")
			var keep []string
			for _, d := range docs {
				if !strings.Contains(d, s) {
					keep = append(keep, d)
				}
			}
			return strings.Join(keep, "\n---\n")
		}
	}
	replace := func(old, new string) func(string) string {
		return func(m string) string { return strings.Replace(m, old, new, 1) }
	}
	for _, tc := range []struct {
		name   string
		change func(string) string
		env    overlayEnv
		want   string
	}{
		{"unknown field", replace("terminationGracePeriodSeconds: 30", "terminationGracePeriod: 30"), overlayEnv{}, `unknown field "terminationGracePeriod"`},
		{"misspelt ScaledObject field", replace("minReplicaCount: 2", "minReplicas: 2"), overlayEnv{}, `unknown field "minReplicas"`},
		{"unknown trigger metadata", replace("lagThreshold: \"100\"", "lagTreshold: \"100\""), overlayEnv{}, `unknown metadata "lagTreshold"`},
		{"unreviewed kind", replace("kind: Service\n", "kind: Ingress\n"), overlayEnv{}, "no decoder for v1 Ingress"},
		{"no liveness probe", replace("          livenessProbe:\n            httpGet: {path: /livez, port: health}\n", ""), overlayEnv{}, "container worker has no livenessProbe"},
		{"probe on an undeclared port", replace("httpGet: {path: /readyz, port: health}", "httpGet: {path: /readyz, port: metrics}"), overlayEnv{}, `probes port "metrics"`},
		{"no limits", replace("            limits: {cpu: \"1\", memory: 128Mi}\n", ""), overlayEnv{}, "container worker has no cpu limit"},
		{"image :latest", replace("example.com/jetflow:v1.2.3", "example.com/jetflow:latest"), overlayEnv{}, "is not pinned (:latest)"},
		{"image without tag", replace("example.com/jetflow:v1.2.3", "example.com:5000/jetflow"), overlayEnv{}, `image "example.com:5000/jetflow" has no tag`},
		{"Deployment without PodDisruptionBudget", dropDoc("kind: PodDisruptionBudget\nmetadata:\n  name: jetflow-worker"), overlayEnv{}, "jetflow-worker: has no PodDisruptionBudget"},
		{"Deployment without NetworkPolicy", dropDoc("kind: NetworkPolicy\nmetadata:\n  name: jetflow-worker"), overlayEnv{}, "has no NetworkPolicy selecting its pods"},
		{"may run as root", replace("      securityContext:\n        runAsNonRoot: true\n      containers:\n        - name: worker", "      containers:\n        - name: worker"), overlayEnv{}, "container worker may run as root"},
		{"writable root filesystem", replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"), overlayEnv{}, "root filesystem is not read-only"},
		{"capabilities kept", replace(`drop: ["ALL"]`, `drop: ["NET_RAW"]`), overlayEnv{}, "does not drop all capabilities"},
		{"service account token", replace("automountServiceAccountToken: false", "automountServiceAccountToken: true"), overlayEnv{}, "mounts a service account token"},
		{"worker reachable from outside", replace("    - from:\n        - podSelector: {}\n      ports:\n        - port: health", "    - from:\n        - namespaceSelector: {}\n      ports:\n        - port: health"), overlayEnv{}, "only the api may be reached from outside"},
		{"partition consumer", replace("consumer: activity-ApproveBudget", "consumer: p3-worker1-7"), overlayEnv{}, "is a partition consumer"},
		{"other stream", replace("stream: JETFLOW_ACT", "stream: JETFLOW_INST"), overlayEnv{}, `stream "JETFLOW_INST"`},
		{"endpoint in another namespace", replace("nats-headless.jetflow.svc", "nats-headless.default.svc"), overlayEnv{}, `names namespace "default"`},
		{"endpoint on a missing Service", replace("nats-headless.jetflow.svc", "nats.jetflow.svc"), overlayEnv{}, `names Service "nats", which is not rendered`},
		{"activity without trigger", nil, overlayEnv{Activities: []string{"ApproveBudget", "ProcessPayment"}}, "no trigger for the activities ProcessPayment"},
		{"replicas under an autoscaler", replace("  name: jetflow-worker\n  namespace: jetflow\nspec:\n  selector:", "  name: jetflow-worker\n  namespace: jetflow\nspec:\n  replicas: 3\n  selector:"), overlayEnv{}, "sets spec.replicas although"},
		{"missing Secret", replace("  name: nats-worker\n  namespace: jetflow\nstringData", "  name: nats-wrker\n  namespace: jetflow\nstringData"), overlayEnv{}, `refers to Secret "nats-worker", which is not rendered`},
		{"Secret in prod", nil, overlayEnv{Prod: true}, "prod ships no credentials"},
		{"hash of another password", replace("  worker-password: example\n", "  worker-password: exampel\n"), overlayEnv{}, "worker-hash is not a bcrypt hash of worker-password"},
		{"no namespace", replace("  name: jetflow-api\n  namespace: jetflow\nspec:\n  selector:", "  name: jetflow-api\nspec:\n  selector:"), overlayEnv{}, "has no namespace"},
		{"NATS other than go.mod's", replace("example.com/jetflow:v1.2.3", "nats:2.10.0-alpine"), overlayEnv{NATSVersion: "2.15.2"}, "runs nats:2.10.0-alpine; go.mod's nats-server is 2.15.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := fixture
			if tc.change != nil {
				m = tc.change(fixture)
				if m == fixture {
					t.Fatal("the change did not apply to the fixture")
				}
			}
			errs := check(m, tc.env)
			if len(errs) == 0 {
				t.Fatalf("want an error containing %q, got none", tc.want)
			}
			if !strings.Contains(errors.Join(errs...).Error(), tc.want) {
				t.Errorf("want an error containing %q, got %v", tc.want, errors.Join(errs...))
			}
		})
	}
}
