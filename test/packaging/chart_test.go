package packaging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
)

func TestHelmLintStrict(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]opts{
		"default values":                 {},
		"full values":                    {files: []string{fullValues}},
		"metrics.serviceMonitor.enabled": {set: []string{"metrics.serviceMonitor.enabled=true"}},
	} {
		t.Run(name, func(t *testing.T) {
			vals, err := o.merge()
			if err != nil {
				t.Fatal(err)
			}
			lint := action.NewLint()
			lint.Strict, lint.KubeVersion = true, kv
			res := lint.Run([]string{chartDir}, vals)
			if res.TotalChartsLinted != 1 {
				t.Errorf("linted %d charts", res.TotalChartsLinted)
			}
			for _, m := range res.Messages {
				if m.Severity > 1 { // above INFO: warnings fail a --strict lint
					t.Errorf("helm lint --strict: %s", m.Error())
				}
			}
			for _, err := range res.Errors {
				t.Errorf("helm lint --strict: %v", err)
			}
		})
	}
}

// Every rendering used below succeeds, and every object in it decodes
// strictly into its k8s.io/api type (renderChart fails otherwise).
func TestHelmTemplateDecodesStrictly(t *testing.T) {
	for _, tc := range []struct {
		name, release, namespace string
		o                        opts
		objects                  int
	}{
		{"default values", "nfs-csi", "kube-system", opts{}, 17},
		{"full values", "r1", "storage", opts{files: []string{fullValues}}, 0},
		{"attachRequired=false", "nfs-csi", "default", opts{set: []string{"csiDriver.attachRequired=false"}}, 0},
		{"clusterID=abc", "nfs-csi", "kube-system", opts{set: []string{"clusterID=abc"}}, 0},
		{"clusterID empty, as in earlier versions' values", "nfs-csi", "kube-system", opts{setString: []string{"clusterID="}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRender(t, tc.release, tc.namespace, tc.o)
			if len(r.Objects) == 0 {
				t.Fatal("no objects")
			}
			if tc.objects > 0 && len(r.Objects) != tc.objects {
				t.Errorf("%d objects, want %d: %s", len(r.Objects), tc.objects, r.names())
			}
		})
	}
}

func TestExamplesDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("deploy/examples: %v, %d files", err, len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if objs, err := decodeStrict(string(data)); err != nil || len(objs) == 0 {
			t.Errorf("%s: %d objects, %v", f, len(objs), err)
		}
	}
}

// Negative control: the strict decoder does catch a misspelt field.
func TestStrictDecodingRejectsMisspeltField(t *testing.T) {
	r := defaultRender(t)
	typo := strings.Replace(r.Manifest, "mountPropagation: Bidirectional", "mountPropagaton: Bidirectional", 1)
	if typo == r.Manifest {
		t.Fatal("the rendering has no mountPropagation: Bidirectional to misspell")
	}
	if _, err := decodeStrict(typo); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("decodeStrict of a misspelt field = %v, want an unknown field error", err)
	}
}

// helm template, Argo CD and Flux do not run lookup: the chart must not need it.
func TestChartUsesNoLookup(t *testing.T) {
	word := regexp.MustCompile(`\blookup\b`)
	files, _ := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if word.Match(data) {
			t.Errorf("%s uses lookup", f)
		}
	}
}

// The SDK reads no helm home; with HELM_* pointing at a private directory,
// nothing the user configured (repositories, plugins) can take part.
func TestHelmRunsWithPrivateHome(t *testing.T) {
	home := t.TempDir()
	for _, v := range []string{"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"} {
		t.Setenv(v, filepath.Join(home, v))
	}
	s := cli.New()
	for _, p := range []string{s.RepositoryCache, s.RepositoryConfig, s.PluginsDirectory} {
		if !strings.HasPrefix(p, home+"/") {
			t.Errorf("helm uses %s, outside its private home %s", p, home)
		}
	}
	r := defaultRender(t)
	if len(r.Objects) == 0 {
		t.Error("nothing rendered with a private helm home")
	}
}

// helm prints NOTES.txt only after an install; the SDK renders it.
func TestNotes(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		r          func(t *testing.T) *rendered
	}{
		{"default values: how to check the driver's pods", "kubectl -n kube-system get deploy,ds,pods -l app.kubernetes.io/instance=nfs-csi", defaultRender},
		{"default values: how to create a StorageClass and a first PVC", "No StorageClass was created", defaultRender},
		{"full values: a first PVC of the release's StorageClass", "storageClassName: nfs-csi", fullRender},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if notes := tc.r(t).Notes; !strings.Contains(notes, tc.want) {
				t.Errorf("NOTES.txt lacks %q:\n%s", tc.want, notes)
			}
		})
	}
}

// values.schema.json rejects invalid values with a clear message.
func TestSchemaRejectsInvalidValues(t *testing.T) {
	sc := []string{"storageClasses[0].name=nfs", "storageClasses[0].share=/exports"}
	// with is the class above with a server, plus more settings; each call
	// has its own slice.
	with := func(more ...string) []string {
		return append([]string{"storageClasses[0].name=nfs", "storageClasses[0].share=/exports", "storageClasses[0].server=nfs.example.internal"}, more...)
	}
	unquoted := filepath.Join(t.TempDir(), "unquoted.yaml")
	if err := os.WriteFile(unquoted, []byte("storageClasses:\n  - {name: nfs, server: s, share: /x, mountPermissions: 0777}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    opts
		msg  string
	}{
		{"StorageClass without server", opts{set: sc}, "at '/storageClasses/0': missing property 'server'"},
		{"StorageClass with unknown onDelete", opts{set: with("storageClasses[0].onDelete=destroy")},
			"at '/storageClasses/0/onDelete': value must be one of 'delete', 'retain', 'archive'"},
		{"StorageClass with non-octal mountPermissions", opts{set: with(), setString: []string{"storageClasses[0].mountPermissions=0999"}},
			"at '/storageClasses/0/mountPermissions': '0999' does not match pattern '^[0-7]{3,4}$'"},
		{"StorageClass with unquoted (numeric) mountPermissions", opts{files: []string{unquoted}},
			"at '/storageClasses/0/mountPermissions': got number, want string"},
		{"StorageClass with a relative share", opts{set: with("storageClasses[0].share=exports")},
			"at '/storageClasses/0/share': 'exports' does not match pattern '^/'"},
		{"two default StorageClasses", opts{set: with("storageClasses[0].default=true", "storageClasses[1].name=b",
			"storageClasses[1].server=s", "storageClasses[1].share=/x", "storageClasses[1].default=true")},
			"at most one StorageClass can be the cluster's default"},
		{"misspelt top-level value", opts{set: []string{"controler.replicas=1"}}, "additional properties 'controler' not allowed"},
		{"invalid duration", opts{set: []string{"driver.nfsTimeout=30 seconds"}}, "at '/driver/nfsTimeout': '30 seconds' does not match pattern"},
		{"shareMountOptions entry without share", opts{set: []string{"controller.shareMountOptions[0].server=s"}},
			"at '/controller/shareMountOptions/0': missing properties 'share', 'mountOptions'"},
		{"shareMountOptions with a comma inside an option", opts{set: []string{"controller.shareMountOptions[0].server=s",
			"controller.shareMountOptions[0].share=/x", `controller.shareMountOptions[0].mountOptions[0]=a\,b`}},
			"at '/controller/shareMountOptions/0/mountOptions/0'"},
		{"clusterID with white space", opts{set: []string{"clusterID=prod east"}}, "at '/clusterID': 'prod east' does not match pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart("x", "default", tc.o)
			if err == nil {
				t.Fatal("helm template succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("helm template: %v\nwant the message %q", err, tc.msg)
			}
		})
	}
}

// valuePaths lists the dotted path of every value values.schema.json
// describes: objects with properties are walked ($ref and the first allOf
// resolved); "global" and *.resources are leaves.
func valuePaths(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	defs, _ := root["definitions"].(map[string]any)
	var resolve func(m map[string]any) map[string]any
	resolve = func(m map[string]any) map[string]any {
		if ref, ok := m["$ref"].(string); ok {
			d, _ := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
			return resolve(d)
		}
		if all, ok := m["allOf"].([]any); ok && len(all) > 0 {
			first, _ := all[0].(map[string]any)
			return resolve(first)
		}
		return m
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		m = resolve(m)
		props, ok := m["properties"].(map[string]any)
		if !ok || prefix == "global" || strings.HasSuffix(prefix, ".resources") {
			out = append(out, prefix)
			return
		}
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub, _ := props[k].(map[string]any)
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, sub)
		}
	}
	walk("", root)
	return out
}

// docs/install.md names every value, and values.yaml sets every one.
func TestEveryValueDocumented(t *testing.T) {
	paths := valuePaths(t)
	if len(paths) < 10 {
		t.Fatalf("the schema describes only %d values: %q", len(paths), paths)
	}
	install, err := os.ReadFile(filepath.Join(repoRoot, "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	valuesYAML, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if p == "global" {
			continue
		}
		if !strings.Contains(string(install), "`"+p+"`") {
			t.Errorf("docs/install.md does not document `%s`", p)
		}
		leaf := p[strings.LastIndex(p, ".")+1:]
		if !regexp.MustCompile(`(?m)^[[:space:]]*` + regexp.QuoteMeta(leaf) + `:`).Match(valuesYAML) {
			t.Errorf("values.yaml does not set %s", p)
		}
	}
}
