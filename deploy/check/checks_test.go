package check

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// ScaledObject is the part of KEDA's ScaledObject (keda.sh/v1alpha1) that jetflow's manifests
// use. It is decoded strictly like the Kubernetes types: a field not listed here is an error, so
// a misspelt one (minReplicas for minReplicaCount) cannot be silently ignored by KEDA.
type ScaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       ScaledObjectSpec  `json:"spec"`
}

// ScaledObjectSpec is a ScaledObject's spec.
type ScaledObjectSpec struct {
	ScaleTargetRef  ScaleTarget `json:"scaleTargetRef"`
	PollingInterval *int32      `json:"pollingInterval,omitempty"`
	CooldownPeriod  *int32      `json:"cooldownPeriod,omitempty"`
	MinReplicaCount *int32      `json:"minReplicaCount,omitempty"`
	MaxReplicaCount *int32      `json:"maxReplicaCount,omitempty"`
	Advanced        *struct {
		HorizontalPodAutoscalerConfig *struct {
			Name     string                                         `json:"name,omitempty"`
			Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
		} `json:"horizontalPodAutoscalerConfig,omitempty"`
		RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
	} `json:"advanced,omitempty"`
	Triggers []Trigger `json:"triggers"`
}

// ScaleTarget is what a ScaledObject scales.
type ScaleTarget struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name"`
}

// Trigger is one of a ScaledObject's triggers.
type Trigger struct {
	Type       string            `json:"type"`
	Name       string            `json:"name,omitempty"`
	MetricType string            `json:"metricType,omitempty"`
	Metadata   map[string]string `json:"metadata"`
}

// overlayEnv is what the checks expect of one rendered overlay.
type overlayEnv struct {
	// Prod: no Secret may be rendered (the operator creates them), and the Secrets referred to
	// are exactly operatorSecrets.
	Prod bool
	// Activities, if not nil: the activity names a ScaledObject must have a trigger for.
	Activities []string
	// NATSVersion, if not empty: the server version every nats image must have (its tag is
	// the version, or the version and a variant: 2.15.2-alpine).
	NATSVersion string
}

// operatorSecrets are the Secrets README.md's "Deploy" section tells the operator to create for
// the prod overlays.
var operatorSecrets = []string{
	"jetflow-api-keys",
	"jetflow-nats-auth",
}

// workload is a Deployment or StatefulSet: the objects that run pods.
type workload struct {
	object
	Replicas *int32
	Template corev1.PodTemplateSpec
}

// natsJetStreamKeys are the metadata KEDA's nats-jetstream trigger reads.
var natsJetStreamKeys = []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold", "activationLagThreshold", "useHttps"}

// partitionConsumer matches the names of jetflow's partition consumers (p<N>-<member>-<epoch>),
// which change as workers come and go.
var partitionConsumer = regexp.MustCompile(`^p[0-9]+-`)

// checkObjects returns every rule the objects break.
func checkObjects(objs []object, env overlayEnv) []error {
	var errs []error
	bad := func(o fmt.Stringer, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o, fmt.Sprintf(format, args...)))
	}
	var (
		workloads  []workload
		pdbs       []*policyv1.PodDisruptionBudget
		policies   []*networkingv1.NetworkPolicy
		services   = map[string]*corev1.Service{} // by namespace/name
		configMaps = map[string]bool{}
		secrets    = map[string]bool{}
		scaled     []object
		hpas       []object
	)
	key := func(ns, name string) string { return ns + "/" + name }
	for _, o := range objs {
		if o.Kind != "Namespace" && o.Namespace == "" {
			bad(o, "has no namespace (an overlay must set one)")
		}
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			workloads = append(workloads, workload{o, v.Spec.Replicas, v.Spec.Template})
			if sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector); err != nil || !sel.Matches(labels.Set(v.Spec.Template.Labels)) {
				bad(o, "selector does not match its pod template's labels")
			}
		case *appsv1.StatefulSet:
			workloads = append(workloads, workload{o, v.Spec.Replicas, v.Spec.Template})
			if sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector); err != nil || !sel.Matches(labels.Set(v.Spec.Template.Labels)) {
				bad(o, "selector does not match its pod template's labels")
			}
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, v)
		case *networkingv1.NetworkPolicy:
			policies = append(policies, v)
		case *corev1.Service:
			services[key(o.Namespace, o.Name)] = v
		case *corev1.ConfigMap:
			configMaps[key(o.Namespace, o.Name)] = true
		case *corev1.Secret:
			secrets[key(o.Namespace, o.Name)] = true
			// An example password and its hash (dev) must agree, or the user cannot connect.
			for _, user := range mismatchedHashes(v) {
				bad(o, "%s-hash is not a bcrypt hash of %s-password", user, user)
			}
			if env.Prod {
				bad(o, "is a Secret in a prod overlay: prod ships no credentials, the operator creates them")
			}
		case *ScaledObject:
			scaled = append(scaled, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		}
	}

	secretRefs := map[string]bool{}
	for _, w := range workloads {
		refs := checkPod(w, env, bad)
		for _, cm := range refs.configMaps {
			if !configMaps[key(w.Namespace, cm)] {
				bad(w, "refers to ConfigMap %q, which is not rendered", cm)
			}
		}
		for _, s := range refs.secrets {
			secretRefs[s] = true
			switch {
			case env.Prod && !slices.Contains(operatorSecrets, s):
				bad(w, "refers to Secret %q, which is not among the Secrets README.md tells the operator to create (%s)", s, strings.Join(operatorSecrets, ", "))
			case !env.Prod && !secrets[key(w.Namespace, s)]:
				bad(w, "refers to Secret %q, which is not rendered", s)
			}
		}
		podLabels := labels.Set(w.Template.Labels)

		// A PodDisruptionBudget for every workload.
		covered := false
		for _, p := range pdbs {
			sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			if err == nil && p.Namespace == w.Namespace && !sel.Empty() && sel.Matches(podLabels) {
				covered = true
			}
		}
		if !covered {
			bad(w, "has no PodDisruptionBudget selecting its pods")
		}

		// Its pods isolated by a NetworkPolicy.
		isolated := false
		for _, p := range policies {
			sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
			if err == nil && p.Namespace == w.Namespace && sel.Matches(podLabels) && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				isolated = true
			}
		}
		if !isolated {
			bad(w, "has no NetworkPolicy selecting its pods for ingress")
		}
	}
	if env.Prod {
		var missing []string
		for _, s := range operatorSecrets {
			if !secretRefs[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("operatorSecrets lists Secrets no workload refers to: %s (update README.md and the list)", strings.Join(missing, ", ")))
		}
	}

	// Only the api is reachable from outside the namespace (and KEDA reads NATS's monitoring
	// port).
	for _, p := range policies {
		po := object{Kind: "NetworkPolicy", Name: p.Name, Namespace: p.Namespace}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			bad(po, "podSelector: %v", err)
			continue
		}
		var selected []string
		for _, w := range workloads {
			if w.Namespace == p.Namespace && sel.Matches(labels.Set(w.Template.Labels)) {
				selected = append(selected, w.Name)
			}
		}
		if len(selected) == 0 {
			bad(po, "selects no pods of the overlay")
		}
		onlyAPI := len(selected) > 0
		for _, name := range selected {
			onlyAPI = onlyAPI && name == "jetflow-api"
		}
		for i, r := range p.Spec.Ingress {
			if onlyAPI || !fromOutside(r) || kedaMonitorRule(r) {
				continue
			}
			bad(po, "ingress rule %d lets in traffic from outside the namespace to %s; only the api may be reached from outside", i, strings.Join(selected, ", "))
		}
	}

	// Services select pods and name their ports.
	for k, s := range services {
		so := object{Kind: "Service", Name: s.Name, Namespace: s.Namespace}
		if s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
			bad(so, "is of type %s; expose the api through an Ingress or Gateway of your own", s.Spec.Type)
		}
		var target *workload
		for i, w := range workloads {
			if w.Namespace == s.Namespace && len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.Template.Labels)) {
				target = &workloads[i]
			}
		}
		if target == nil {
			bad(so, "selects no pods (%s)", k)
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "" && !hasPort(target.Template.Spec, p.TargetPort.StrVal) {
				bad(so, "port %s targets %q, which %s does not declare", p.Name, p.TargetPort.StrVal, target.Name)
			}
		}
	}

	// Autoscalers: each targets a rendered Deployment that no other autoscaler targets and that
	// leaves spec.replicas to it.
	autoscaled := map[string]string{}
	target := func(o object, kind, name string) {
		if kind != "" && kind != "Deployment" {
			bad(o, "scales a %s; only Deployments are expected", kind)
			return
		}
		var w *workload
		for i := range workloads {
			if workloads[i].Kind == "Deployment" && workloads[i].Namespace == o.Namespace && workloads[i].Name == name {
				w = &workloads[i]
			}
		}
		if w == nil {
			bad(o, "scales Deployment %q, which is not rendered", name)
			return
		}
		if prev, ok := autoscaled[name]; ok {
			bad(o, "scales Deployment %q, which %s scales too", name, prev)
		}
		autoscaled[name] = o.String()
		if w.Replicas != nil {
			bad(w, "sets spec.replicas although %s scales it (every kubectl apply would reset the count)", o)
		}
	}
	for _, o := range hpas {
		h := o.Obj.(*autoscalingv2.HorizontalPodAutoscaler)
		target(o, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
			bad(o, "minReplicas must be at least 2")
		}
	}
	for _, o := range scaled {
		so := o.Obj.(*ScaledObject)
		target(o, so.Spec.ScaleTargetRef.Kind, so.Spec.ScaleTargetRef.Name)
		if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 2 {
			bad(o, "minReplicaCount must be at least 2")
		}
		if so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount < *so.Spec.MinReplicaCount {
			bad(o, "maxReplicaCount must be set, at least minReplicaCount")
		}
		errs = append(errs, checkTriggers(o, so, services, env)...)
	}

	// The NATS image is the server version jetflow embeds.
	if v := env.NATSVersion; v != "" {
		for _, w := range workloads {
			for _, c := range w.Template.Spec.Containers {
				if repo, tag := splitImage(c.Image); repo == "nats" && tag != v && !strings.HasPrefix(tag, v+"-") {
					bad(w, "container %s runs nats:%s; go.mod's nats-server is %s", c.Name, tag, v)
				}
			}
		}
	}
	return errs
}

// fromOutside reports whether an ingress rule admits traffic from other namespaces or
// addresses: no peers (anyone), a namespaceSelector or an ipBlock.
func fromOutside(r networkingv1.NetworkPolicyIngressRule) bool {
	if len(r.From) == 0 {
		return true
	}
	for _, p := range r.From {
		if p.NamespaceSelector != nil || p.IPBlock != nil {
			return true
		}
	}
	return false
}

// kedaMonitorRule reports whether r admits only KEDA's namespace, and only to the NATS
// monitoring port.
func kedaMonitorRule(r networkingv1.NetworkPolicyIngressRule) bool {
	if len(r.From) == 0 || len(r.Ports) == 0 {
		return false
	}
	for _, p := range r.From {
		if p.IPBlock != nil || p.NamespaceSelector == nil || p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "keda" {
			return false
		}
	}
	for _, p := range r.Ports {
		if p.Port == nil || p.Port.StrVal != "monitor" {
			return false
		}
	}
	return true
}

// podRefs are the ConfigMaps and Secrets a pod refers to.
type podRefs struct{ configMaps, secrets []string }

// checkPod checks a workload's pod template: probes on real endpoints, requests and limits, a
// pinned image, non-root, a read-only root filesystem and no capabilities.
func checkPod(w workload, env overlayEnv, bad func(fmt.Stringer, string, ...any)) podRefs {
	spec := w.Template.Spec
	var refs podRefs
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	if spec.SecurityContext != nil && spec.SecurityContext.RunAsUser != nil && *spec.SecurityContext.RunAsUser == 0 {
		bad(w, "runs as user 0")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		bad(w, "mounts a service account token (set automountServiceAccountToken: false; jetflow does not talk to the Kubernetes API)")
	}
	if len(spec.Containers) == 0 {
		bad(w, "has no containers")
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			refs.secrets = append(refs.secrets, v.Secret.SecretName)
		}
		if v.ConfigMap != nil {
			refs.configMaps = append(refs.configMaps, v.ConfigMap.Name)
		}
	}
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for _, c := range all {
		where := fmt.Sprintf("container %s", c.Name)
		if _, tag := splitImage(c.Image); tag == "" {
			bad(w, "%s: image %q has no tag: pin one in kustomization.yaml's images", where, c.Image)
		} else if tag == "latest" {
			bad(w, "%s: image %q is not pinned (:latest)", where, c.Image)
		}
		for name, p := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe} {
			switch {
			case p == nil:
				bad(w, "%s has no %s", where, name)
			case p.HTTPGet == nil:
				bad(w, "%s: %s is not an HTTP GET of a health endpoint", where, name)
			case !strings.HasPrefix(p.HTTPGet.Path, "/"):
				bad(w, "%s: %s has no path", where, name)
			case p.HTTPGet.Port.StrVal != "" && !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.HTTPGet.Port.StrVal }):
				bad(w, "%s: %s probes port %q, which the container does not declare", where, name, p.HTTPGet.Port.StrVal)
			}
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := c.Resources.Requests[res]; !ok || q.IsZero() {
				bad(w, "%s has no %s request", where, res)
			}
			if q, ok := c.Resources.Limits[res]; !ok || q.IsZero() {
				bad(w, "%s has no %s limit", where, res)
			}
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			bad(w, "%s has no securityContext", where)
		default:
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				bad(w, "%s: root filesystem is not read-only", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				bad(w, "%s allows privilege escalation", where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				bad(w, "%s is privileged", where)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				bad(w, "%s does not drop all capabilities", where)
			}
			if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				bad(w, "%s runs as user 0", where)
			}
		}
		if !podNonRoot && (sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
			bad(w, "%s may run as root (runAsNonRoot is not set)", where)
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				refs.secrets = append(refs.secrets, r.Name)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				refs.configMaps = append(refs.configMaps, r.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				refs.secrets = append(refs.secrets, e.SecretRef.Name)
			}
			if e.ConfigMapRef != nil {
				refs.configMaps = append(refs.configMaps, e.ConfigMapRef.Name)
			}
		}
	}
	return refs
}

// checkTriggers checks a ScaledObject's triggers: nats-jetstream ones on stable activity
// consumers of a Service that exists, in the ScaledObject's namespace.
func checkTriggers(o object, so *ScaledObject, services map[string]*corev1.Service, env overlayEnv) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o, fmt.Sprintf(format, args...)))
	}
	if len(so.Spec.Triggers) == 0 {
		bad("has no triggers")
	}
	consumers := map[string]bool{}
	for i, tr := range so.Spec.Triggers {
		where := fmt.Sprintf("trigger %d (%s)", i, tr.Name)
		switch tr.Type {
		case "nats-jetstream":
			for k := range tr.Metadata {
				if !slices.Contains(natsJetStreamKeys, k) {
					bad("%s: unknown metadata %q (nats-jetstream reads %s)", where, k, strings.Join(natsJetStreamKeys, ", "))
				}
			}
			for _, k := range []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"} {
				if tr.Metadata[k] == "" {
					bad("%s: no %s", where, k)
				}
			}
			if s := tr.Metadata["stream"]; s != "JETFLOW_ACT" {
				bad("%s: stream %q; the stable consumers are the activity consumers on JETFLOW_ACT", where, s)
			}
			c := tr.Metadata["consumer"]
			switch {
			case partitionConsumer.MatchString(c):
				bad("%s: consumer %q is a partition consumer, whose name changes as workers come and go", where, c)
			case !strings.HasPrefix(c, "activity-"):
				bad("%s: consumer %q is not an activity consumer (activity-<name>)", where, c)
			}
			consumers[c] = true
			for _, k := range []string{"lagThreshold", "activationLagThreshold"} {
				if v, ok := tr.Metadata[k]; ok {
					if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 || (k == "lagThreshold" && n == 0) {
						bad("%s: %s %q is not a positive integer", where, k, v)
					}
				}
			}
			if v, ok := tr.Metadata["useHttps"]; ok {
				if _, err := strconv.ParseBool(v); err != nil {
					bad("%s: useHttps %q is not a boolean", where, v)
				}
			}
			checkEndpoint(o, tr.Metadata["natsServerMonitoringEndpoint"], services, func(format string, args ...any) {
				bad("%s: %s", where, fmt.Sprintf(format, args...))
			})
		case "cpu", "memory":
			if tr.MetricType != "Utilization" && tr.MetricType != "AverageValue" {
				bad("%s: metricType %q; want Utilization or AverageValue", where, tr.MetricType)
			}
			for k := range tr.Metadata {
				if k != "value" && k != "containerName" {
					bad("%s: unknown metadata %q", where, k)
				}
			}
			if n, err := strconv.Atoi(tr.Metadata["value"]); err != nil || n <= 0 {
				bad("%s: value %q is not a positive integer", where, tr.Metadata["value"])
			}
		default:
			bad("%s: trigger type %q is not checked here", where, tr.Type)
		}
	}
	if env.Activities != nil {
		var missing []string
		for _, a := range env.Activities {
			if !consumers["activity-"+a] {
				missing = append(missing, a)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			bad("no trigger for the activities %s (consumers activity-<name>)", strings.Join(missing, ", "))
		}
	}
	return errs
}

// checkEndpoint checks that endpoint is host:port of a rendered Service in o's namespace,
// written <service>.<namespace>.svc[.cluster.local] (KEDA runs in another namespace).
func checkEndpoint(o object, endpoint string, services map[string]*corev1.Service, bad func(string, ...any)) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		bad("natsServerMonitoringEndpoint %q is not host:port", endpoint)
		return
	}
	parts := strings.Split(host, ".")
	if len(parts) < 3 || parts[2] != "svc" || (len(parts) > 3 && strings.Join(parts[3:], ".") != "cluster.local") {
		bad("natsServerMonitoringEndpoint %q is not <service>.<namespace>.svc.cluster.local:<port>", endpoint)
		return
	}
	if parts[1] != o.Namespace {
		bad("natsServerMonitoringEndpoint %q names namespace %q, but the overlay deploys to %q", endpoint, parts[1], o.Namespace)
		return
	}
	s, ok := services[o.Namespace+"/"+parts[0]]
	if !ok {
		bad("natsServerMonitoringEndpoint %q names Service %q, which is not rendered", endpoint, parts[0])
		return
	}
	if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
		bad("natsServerMonitoringEndpoint %q: Service %s has no port %s", endpoint, s.Name, port)
	}
}

// mismatchedHashes returns the users whose <user>-password and <user>-hash in s do not match.
func mismatchedHashes(s *corev1.Secret) []string {
	keys := map[string]bool{}
	for k := range s.Data {
		keys[k] = true
	}
	for k := range s.StringData {
		keys[k] = true
	}
	var users []string
	for k := range keys {
		user, ok := strings.CutSuffix(k, "-password")
		hash := secretValue(s, user+"-hash")
		if ok && hash != nil && bcrypt.CompareHashAndPassword(hash, secretValue(s, k)) != nil {
			users = append(users, user)
		}
	}
	sort.Strings(users)
	return users
}

// secretValue returns a Secret's value under key, from data or stringData; nil if it has none.
func secretValue(s *corev1.Secret, key string) []byte {
	if v, ok := s.Data[key]; ok {
		return v
	}
	if v, ok := s.StringData[key]; ok {
		return []byte(v)
	}
	return nil
}

// splitImage splits an image reference into repository and tag; a digest counts as a tag.
func splitImage(image string) (repo, tag string) {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[:i], image[i+1:]
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[:i], image[i+1:]
	}
	return image, ""
}

// hasPort reports whether a container of spec declares a port of that name.
func hasPort(spec corev1.PodSpec, name string) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}
