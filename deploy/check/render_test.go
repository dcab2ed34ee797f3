// Package check renders jetflow's Kubernetes manifests (deploy/) with kustomize and checks what
// comes out: every object decodes strictly into its Kubernetes type (an unknown or misspelt field
// fails), and the workloads keep the rules of README.md's "Deploy" section. `make deploy-check`
// runs it. It is a module of its own so that jetflow's go.mod does not carry kustomize and
// k8s.io/api.
package check

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// deployDir is deploy/ relative to this package.
const deployDir = ".."

// object is one rendered manifest decoded into its type.
type object struct {
	Kind, Name, Namespace string
	Obj                   any // *appsv1.Deployment, *ScaledObject, ...
}

func (o object) String() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// decoders make an empty object of each kind the manifests may hold, keyed by apiVersion and
// kind. Anything else fails the check: a kind nobody reviewed does not slip in.
var decoders = map[string]func() any{
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any {
		return &autoscalingv2.HorizontalPodAutoscaler{}
	},
	"keda.sh/v1alpha1/ScaledObject": func() any { return &ScaledObject{} },
}

// decode decodes one manifest strictly: an unknown field, a duplicate field or a value of the
// wrong type is an error.
func decode(doc []byte) (object, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return object{}, err
	}
	o := object{Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace}
	mk, ok := decoders[head.APIVersion+"/"+head.Kind]
	if !ok {
		return o, fmt.Errorf("%s: no decoder for %s %s: add the kind to decoders (and its checks)", o, head.APIVersion, head.Kind)
	}
	o.Obj = mk()
	if err := yaml.UnmarshalStrict(doc, o.Obj); err != nil {
		return o, fmt.Errorf("%s: %w", o, err)
	}
	return o, nil
}

// decodeAll decodes a stream of YAML documents separated by "---" lines.
func decodeAll(stream []byte) ([]object, []error) {
	var objs []object
	var errs []error
	for _, doc := range bytes.Split(stream, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		o, err := decode(doc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, o)
	}
	return objs, errs
}

// deployConfs returns the NATS configuration files deploy/*.conf by name: deploy/nats.conf and
// whatever files it is used with (e.g. a TLS variant that includes it).
func deployConfs(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(deployDir, "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	confs := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		confs[filepath.Base(p)] = b
	}
	if confs["nats.conf"] == nil {
		t.Fatal("deploy/nats.conf is missing")
	}
	return confs
}

// TestBaseConfsAreDeployConfs: deploy/base holds a copy of each deploy/*.conf (kustomize cannot
// read files above a kustomization's directory), the same byte for byte; `make deploy-sync`
// copies them. TestOverlays checks that the ConfigMap nats-config carries them.
func TestBaseConfsAreDeployConfs(t *testing.T) {
	for name, want := range deployConfs(t) {
		got, err := os.ReadFile(filepath.Join(deployDir, "base", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("deploy/base/%s is not a copy of deploy/%s: run make deploy-sync (and edit only deploy/%s)", name, name, name)
		}
	}
}

// checkNATSConfig reports a ConfigMap nats-config (name suffixed by kustomize) whose files are
// not exactly deploy/*.conf.
func checkNATSConfig(objs []object, confs map[string][]byte) []error {
	var errs []error
	found := false
	for _, o := range objs {
		cm, ok := o.Obj.(*corev1.ConfigMap)
		if !ok || !strings.HasPrefix(o.Name, "nats-config") {
			continue
		}
		found = true
		for name, want := range confs {
			if got, ok := cm.Data[name]; !ok || got != string(want) {
				errs = append(errs, fmt.Errorf("%s: %s is not deploy/%s: run make deploy-sync and list it in deploy/base/kustomization.yaml's nats-config", o, name, name))
			}
		}
		for name := range cm.Data {
			if confs[name] == nil {
				errs = append(errs, fmt.Errorf("%s: holds %s, which deploy/ does not", o, name))
			}
		}
	}
	if !found {
		errs = append(errs, errors.New("no ConfigMap nats-config"))
	}
	return errs
}

// render runs kustomize on dir (relative to deploy/) the way `kubectl apply -k` does, with the
// default load restrictor (files only from under the kustomization's root), and returns the
// output as one YAML stream.
func render(dir string) ([]byte, error) {
	abs, err := filepath.Abs(filepath.Join(deployDir, dir))
	if err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return m.AsYaml()
}

// overlays lists deploy/overlays/*.
func overlays(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(deployDir, "overlays"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join("overlays", e.Name()))
		}
	}
	return dirs
}

// summary lists objs by kind, one line per kind: "Deployment (3): jetflow-api, ...".
func summary(objs []object) string {
	byKind := map[string][]string{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o.Name)
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	for _, k := range kinds {
		names := byKind[k]
		sort.Strings(names)
		fmt.Fprintf(&b, "  %-24s %d: %s\n", k, len(names), strings.Join(names, ", "))
	}
	return b.String()
}

// TestOverlays renders every overlay and checks its objects; with -v it prints them by kind.
func TestOverlays(t *testing.T) {
	dirs := overlays(t)
	activities := exampleActivities(t)
	natsVersion := goModNATSVersion(t)
	confs := deployConfs(t)
	for _, want := range []string{"overlays/dev", "overlays/prod", "overlays/prod-hpa"} {
		found := false
		for _, d := range dirs {
			found = found || filepath.ToSlash(d) == want
		}
		if !found {
			t.Errorf("deploy/%s is missing", want)
		}
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out, err := render(dir)
			if err != nil {
				t.Fatal(err)
			}
			objs, errs := decodeAll(out)
			for _, err := range errs {
				t.Error(err)
			}
			env := overlayEnv{
				Prod:        strings.HasPrefix(filepath.Base(dir), "prod"),
				Activities:  activities,
				NATSVersion: natsVersion,
			}
			for _, err := range checkObjects(objs, env) {
				t.Error(err)
			}
			for _, err := range checkNATSConfig(objs, confs) {
				t.Error(err)
			}
			t.Logf("deploy/%s: %d objects\n%s", filepath.ToSlash(dir), len(objs), summary(objs))
		})
	}
}

// exampleActivities returns the names the example activities are registered under: the string
// constants of activities/activities.go's block documented "The names the activities are
// registered under". The example worker's ScaledObject must scale on each one's consumer.
func exampleActivities(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(deployDir, "..", "activities", "activities.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST || g.Doc == nil || !strings.Contains(g.Doc.Text(), "activities are registered under") {
			continue
		}
		for _, s := range g.Specs {
			for _, v := range s.(*ast.ValueSpec).Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: activity name %v is not a string literal", path, v)
				}
				name := constant.StringVal(constant.MakeFromLiteral(lit.Value, lit.Kind, 0))
				// Names of letters, digits, '-' and '_' are their own subject token (and so
				// consumer name suffix); others would need natsjs's escaping here.
				if strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
					t.Fatalf("%s: activity name %q needs escaping; teach the check natsjs's token encoding", path, name)
				}
				names = append(names, name)
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("%s: found no activity names (the const block documented \"The names the activities are registered under\")", path)
	}
	return names
}

// goModNATSVersion returns the version of github.com/nats-io/nats-server/v2 in jetflow's go.mod,
// without the "v": the server jetflow embeds and tests against.
func goModNATSVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "github.com/nats-io/nats-server/v2" {
				return strings.TrimPrefix(f[i+1], "v")
			}
		}
	}
	t.Fatal("go.mod does not require github.com/nats-io/nats-server/v2")
	return ""
}
