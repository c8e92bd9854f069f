package packaging

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/yaml"
)

// repoRoot is the checkout this module lives in (test/packaging).
var repoRoot = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}()

var (
	chartDir   = filepath.Join(repoRoot, "charts", "nfs-csi")
	fullValues = filepath.Join(chartDir, "ci", "full-values.yaml")
)

// kubeVersion is what `helm template` and `helm lint` assume (hack/tools.sh's
// NFS_CSI_KUBE_VERSION), so that the rendering depends on no cluster.
const kubeVersion = "1.33.0"

// opts are helm's --values, --set and --set-string.
type opts struct {
	files, set, setString []string
}

func (o opts) merge() (map[string]any, error) {
	return (&values.Options{ValueFiles: o.files, Values: o.set, StringValues: o.setString}).MergeValues(getter.Providers{})
}

// rendered is one `helm template`: the manifest, NOTES.txt and the objects.
type rendered struct {
	Manifest string
	Notes    string
	Objects  []object
}

// object is one document of a manifest, decoded strictly into its type.
type object struct {
	Kind, Name string
	Obj        any
	Raw        []byte
}

// renderChart is `helm template RELEASE charts/nfs-csi --namespace NS` with
// the Helm SDK, as the CLI does it (client only, no cluster).
func renderChart(release, namespace string, o opts) (*rendered, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	vals, err := o.merge()
	if err != nil {
		return nil, err
	}
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace, install.KubeVersion = release, namespace, kv
	rel, err := install.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	r := &rendered{Manifest: rel.Manifest, Notes: rel.Info.Notes}
	if r.Objects, err = decodeStrict(rel.Manifest); err != nil {
		return r, err
	}
	return r, nil
}

func mustRender(t *testing.T, release, namespace string, o opts) *rendered {
	t.Helper()
	r, err := renderChart(release, namespace, o)
	if err != nil {
		t.Fatalf("helm template %s (namespace %s, %+v): %v", release, namespace, o, err)
	}
	return r
}

func defaultRender(t *testing.T) *rendered { return mustRender(t, "nfs-csi", "kube-system", opts{}) }

func fullRender(t *testing.T) *rendered {
	return mustRender(t, "r1", "storage", opts{files: []string{fullValues}})
}

// newObject is the k8s.io/api type of each kind the chart may render.
func newObject(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "v1/Pod":
		return &corev1.Pod{}
	case "v1/Service":
		return &corev1.Service{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "apps/v1/DaemonSet":
		return &appsv1.DaemonSet{}
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		return &rbacv1.ClusterRole{}
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}
	case "storage.k8s.io/v1/CSIDriver":
		return &storagev1.CSIDriver{}
	case "storage.k8s.io/v1/StorageClass":
		return &storagev1.StorageClass{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		// No Go type in k8s.io/api: kept as a map, checked field by field.
		return &map[string]any{}
	}
	return nil
}

// decodeStrict decodes every YAML document into its type, rejecting unknown
// fields (a misspelt field is an error, not a silently dropped setting).
func decodeStrict(manifest string) ([]object, error) {
	var out []object
	for i, doc := range bytes.Split(append([]byte("\n"), manifest...), []byte("\n---")) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return out, fmt.Errorf("document %d: %v", i, err)
		}
		if meta.Kind == "" {
			continue // comments only
		}
		obj := newObject(meta.APIVersion, meta.Kind)
		if obj == nil {
			return out, fmt.Errorf("document %d: unexpected %s %s", i, meta.APIVersion, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return out, fmt.Errorf("%s %s: %v", meta.Kind, meta.Metadata.Name, err)
		}
		out = append(out, object{Kind: meta.Kind, Name: meta.Metadata.Name, Obj: obj, Raw: doc})
	}
	return out, nil
}

// get returns the object of kind and name, or fails the test.
func get[T any](t *testing.T, r *rendered, kind, name string) T {
	t.Helper()
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o.Obj.(T)
		}
	}
	t.Fatalf("no %s/%s in the rendering; it has %s", kind, name, r.names())
	var zero T
	return zero
}

func (r *rendered) names() string {
	var s []string
	for _, o := range r.Objects {
		s = append(s, o.Kind+"/"+o.Name)
	}
	return strings.Join(s, ", ")
}

func (r *rendered) has(kind, name string) bool {
	return slices.ContainsFunc(r.Objects, func(o object) bool { return o.Kind == kind && o.Name == name })
}

func (r *rendered) ofKind(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// named returns the item of items called want, or fails the test naming
// what was looked for in where.
func named[T any](t *testing.T, items []T, name func(T) string, want, what string) T {
	t.Helper()
	for _, it := range items {
		if name(it) == want {
			return it
		}
	}
	t.Fatalf("no %s %s", what, want)
	var zero T
	return zero
}

// container returns the named container of spec, or fails the test.
func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	return named(t, spec.Containers, func(c corev1.Container) string { return c.Name }, name, "container")
}

func hasContainer(spec corev1.PodSpec, name string) bool {
	return slices.ContainsFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == name })
}

func volume(t *testing.T, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	return named(t, spec.Volumes, func(v corev1.Volume) string { return v.Name }, name, "volume")
}

func mount(t *testing.T, c corev1.Container, name string) corev1.VolumeMount {
	t.Helper()
	return named(t, c.VolumeMounts, func(m corev1.VolumeMount) string { return m.Name }, name, "mount of container "+c.Name)
}

func port(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// wantArg fails unless c has exactly this argument.
func wantArg(t *testing.T, c corev1.Container, arg string) {
	t.Helper()
	if !slices.Contains(c.Args, arg) {
		t.Errorf("container %s lacks argument %s; it has %q", c.Name, arg, c.Args)
	}
}

// argsWith lists the arguments of every container of every workload that
// contain s.
func argsWith(r *rendered, s string) []string {
	var out []string
	for _, o := range r.Objects {
		spec, ok := podSpec(o)
		if !ok {
			continue
		}
		for _, c := range spec.Containers {
			for _, a := range c.Args {
				if strings.Contains(a, s) {
					out = append(out, o.Kind+"/"+o.Name+"/"+c.Name+": "+a)
				}
			}
		}
	}
	return out
}

func podSpec(o object) (corev1.PodSpec, bool) {
	switch w := o.Obj.(type) {
	case *appsv1.Deployment:
		return w.Spec.Template.Spec, true
	case *appsv1.DaemonSet:
		return w.Spec.Template.Spec, true
	case *appsv1.StatefulSet:
		return w.Spec.Template.Spec, true
	case *corev1.Pod:
		return w.Spec, true
	}
	return corev1.PodSpec{}, false
}

// rules lists every RBAC rule of the rendering, by role.
func rules(r *rendered) map[string][]rbacv1.PolicyRule {
	out := map[string][]rbacv1.PolicyRule{}
	for _, o := range r.Objects {
		switch role := o.Obj.(type) {
		case *rbacv1.ClusterRole:
			out["ClusterRole/"+o.Name] = role.Rules
		case *rbacv1.Role:
			out["Role/"+o.Name] = role.Rules
		}
	}
	return out
}

// wantRule fails unless role has a rule of exactly these groups, resources,
// verbs and resource names.
func wantRule(t *testing.T, r *rendered, role string, want rbacv1.PolicyRule) {
	t.Helper()
	for _, rule := range rules(r)[role] {
		if slices.Equal(rule.APIGroups, want.APIGroups) && slices.Equal(rule.Resources, want.Resources) &&
			slices.Equal(rule.Verbs, want.Verbs) && slices.Equal(rule.ResourceNames, want.ResourceNames) {
			return
		}
	}
	t.Errorf("%s has no rule %+v; it has %+v", role, want, rules(r)[role])
}

// rulesOn lists the rules, of any role, that name resource.
func rulesOn(r *rendered, resource string) []string {
	var out []string
	for role, rs := range rules(r) {
		for _, rule := range rs {
			if slices.Contains(rule.Resources, resource) {
				out = append(out, fmt.Sprintf("%s: %+v", role, rule))
			}
		}
	}
	return out
}
