package nfs

import (
	"path"
	"strings"
	"testing"
)

func TestExpandSubDir(t *testing.T) {
	all := map[string]string{
		VarPVCName:      "data-db-0",
		VarPVCNamespace: "team-a",
		VarPVName:       "pvc-7f3a",
	}
	tests := []struct {
		name     string
		template string
		values   map[string]string
		want     string
	}{
		{"pvc name", "${pvc.metadata.name}", all, "data-db-0"},
		{"pvc namespace", "${pvc.metadata.namespace}", all, "team-a"},
		{"pv name", "${pv.metadata.name}", all, "pvc-7f3a"},
		{"nested", "${pvc.metadata.namespace}/${pvc.metadata.name}", all, "team-a/data-db-0"},
		{"three levels", "${pvc.metadata.namespace}/${pvc.metadata.name}/${pv.metadata.name}", all, "team-a/data-db-0/pvc-7f3a"},
		{"literal around", "k8s/${pvc.metadata.namespace}-ns/vol-${pv.metadata.name}.d", all, "k8s/team-a-ns/vol-pvc-7f3a.d"},
		{"adjacent variables", "${pvc.metadata.namespace}${pvc.metadata.name}", all, "team-adata-db-0"},
		{"same variable twice", "${pv.metadata.name}/${pv.metadata.name}", all, "pvc-7f3a/pvc-7f3a"},
		{"no variables", "static/dir", nil, "static/dir"},
		{"unused values are fine", "fixed", all, "fixed"},
		{"only the used value is needed", "x/${pv.metadata.name}", map[string]string{VarPVName: "pv-1"}, "x/pv-1"},
		{"lone dollar and brace", "$a/}b/{c", nil, "$a/}b/{c"},
		{"value with dots", "${pvc.metadata.name}", map[string]string{VarPVCName: "a..b"}, "a..b"},
		{"value may be .nfs-csi below the root", "x/${pvc.metadata.name}", map[string]string{VarPVCName: MetadataDirName}, "x/.nfs-csi"},
		{"nfs-subdir pathPattern", "${.PVC.namespace}/${.PVC.name}", all, "team-a/data-db-0"},
		{"nfs-subdir default layout", "${.PVC.namespace}-${.PVC.name}-${pv.metadata.name}", all, "team-a-data-db-0-pvc-7f3a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandSubDir(tt.template, tt.values)
			if err != nil {
				t.Fatalf("ExpandSubDir(%q): %v", tt.template, err)
			}
			if got != tt.want {
				t.Errorf("ExpandSubDir(%q) = %q, want %q", tt.template, got, tt.want)
			}
		})
	}
}

func TestExpandSubDirErrors(t *testing.T) {
	all := map[string]string{
		VarPVCName:      "data-db-0",
		VarPVCNamespace: "team-a",
		VarPVName:       "pvc-7f3a",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range all {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	without := func(k string) map[string]string {
		m := with(k, "")
		delete(m, k)
		return m
	}
	tests := []struct {
		name     string
		template string
		values   map[string]string
		want     []string // fragments the message must contain
	}{
		{"unknown variable", "${pvc.metadata.uid}", all, []string{"unknown variable ${pvc.metadata.uid}", "${pvc.metadata.name}"}},
		{"unknown variable among known", "${pvc.metadata.namespace}/${pvc.spec.storageClassName}", all, []string{"${pvc.spec.storageClassName}"}},
		{"empty variable name", "a/${}", all, []string{"unknown variable ${}"}},
		{"nfs-subdir claim label", "${.PVC.namespace}/${.PVC.labels.app}", all, []string{"${.PVC.labels.app}", "not its labels", "${.PVC.name}"}},
		{"nfs-subdir claim annotation", "${.PVC.annotations.nfs.io/storage-path}", all, []string{"${.PVC.annotations.nfs.io/storage-path}", "not its annotations"}},
		{"nfs-subdir other claim field", "${.PVC.uid}", all, []string{"unknown variable ${.PVC.uid}"}},
		{"nested braces", "${${pvc.metadata.name}}", all, []string{"unknown variable"}},
		{"missing pvc name", "${pvc.metadata.name}", without(VarPVCName), []string{"csi.storage.k8s.io/pvc/name", "--extra-create-metadata", "${pvc.metadata.name}"}},
		{"missing namespace", "${pvc.metadata.namespace}/x", without(VarPVCNamespace), []string{"csi.storage.k8s.io/pvc/namespace", "--extra-create-metadata"}},
		{"missing pv name", "${pv.metadata.name}", nil, []string{"csi.storage.k8s.io/pv/name", "--extra-create-metadata"}},
		{"empty value is missing", "${pvc.metadata.name}", with(VarPVCName, ""), []string{"csi.storage.k8s.io/pvc/name", "--extra-create-metadata"}},
		{"value ..", "${pvc.metadata.name}", with(VarPVCName, ".."), []string{"${pvc.metadata.name}", `".."`}},
		{"value .", "x/${pvc.metadata.name}", with(VarPVCName, "."), []string{`"."`}},
		{"value with slash", "${pvc.metadata.namespace}", with(VarPVCNamespace, "a/b"), []string{"${pvc.metadata.namespace}", "'/'"}},
		{"value escaping", "${pvc.metadata.name}", with(VarPVCName, "../../etc"), []string{"'/'"}},
		{"value with NUL", "${pv.metadata.name}", with(VarPVName, "a\x00b"), []string{"control"}},
		{"value too long", "${pv.metadata.name}", with(VarPVName, strings.Repeat("p", MaxComponentLen+1)), []string{"longer than"}},
		{"empty template", "", all, []string{"share root"}},
		{"unterminated", "${pvc.metadata.name", all, []string{"unterminated"}},
		{"unterminated after a variable", "${pvc.metadata.name}/${", all, []string{"unterminated"}},
		{"literal ..", "../${pvc.metadata.name}", all, []string{`".."`}},
		{"literal leading slash", "/${pvc.metadata.name}", all, []string{"absolute"}},
		{"literal trailing slash", "${pvc.metadata.name}/", all, []string{"empty path component"}},
		{"value completes ..", ".${pvc.metadata.name}", with(VarPVCName, "."), []string{`"."`}},
		{"literal and value make ..", "${pvc.metadata.name}.", with(VarPVCName, "."), []string{`"."`}},
		{"value makes metadata dir", ".${pvc.metadata.name}/x", with(VarPVCName, "nfs-csi"), []string{"reserved"}},
		{"value is metadata dir", "${pvc.metadata.name}", with(VarPVCName, MetadataDirName), []string{"reserved"}},
		{"too long overall", strings.Repeat("${pv.metadata.name}/", 5) + "x", with(VarPVName, strings.Repeat("p", 250)), []string{"longer than 1024"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandSubDir(tt.template, tt.values)
			if err == nil {
				t.Fatalf("ExpandSubDir(%q) = %q, want an error", tt.template, got)
			}
			if got != "" {
				t.Errorf("ExpandSubDir(%q) returned %q with its error", tt.template, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ExpandSubDir(%q) error %q does not mention %q", tt.template, err, w)
				}
			}
		})
	}
}

func TestTemplateSourcesCoverVariables(t *testing.T) {
	for _, v := range []string{VarPVCName, VarPVCNamespace, VarPVName} {
		src, ok := TemplateSources[v]
		if !ok || !strings.HasPrefix(src, "csi.storage.k8s.io/") {
			t.Errorf("TemplateSources[%q] = %q, %v", v, src, ok)
		}
	}
	if len(TemplateSources) != 3 {
		t.Errorf("TemplateSources has %d entries, want 3", len(TemplateSources))
	}
}

func FuzzExpandSubDir(f *testing.F) {
	f.Add("${pvc.metadata.namespace}/${pvc.metadata.name}", "data-0", "team-a", "pvc-1")
	f.Add("${pvc.metadata.name}", "..", "ns", "pv")
	f.Add("x/${pvc.metadata.name}/y", "a/../../b", "ns", "pv")
	f.Add(".${pvc.metadata.name}", "nfs-csi", "ns", "pv")
	f.Add("${pv.metadata.name}${pvc.metadata.name}", ".", ".", ".")
	f.Add("${pvc.metadata.name", "a", "b", "c")
	f.Add("lit/${pv.metadata.name}", "", "", "pv-\x00")
	f.Fuzz(func(t *testing.T, template, name, namespace, pvName string) {
		values := map[string]string{VarPVCName: name, VarPVCNamespace: namespace, VarPVName: pvName}
		got, err := ExpandSubDir(template, values)
		if err != nil {
			if got != "" {
				t.Fatalf("ExpandSubDir(%q, %q) = %q with error %v", template, values, got, err)
			}
			return
		}
		if got == "" {
			t.Fatalf("ExpandSubDir(%q, %q) succeeded with an empty subDir", template, values)
		}
		if strings.HasPrefix(got, "/") {
			t.Fatalf("ExpandSubDir(%q, %q) = %q is absolute", template, values, got)
		}
		if path.Clean(got) != got {
			t.Fatalf("ExpandSubDir(%q, %q) = %q is not clean", template, values, got)
		}
		for _, c := range strings.Split(got, "/") {
			if c == ".." || c == "." || c == "" {
				t.Fatalf("ExpandSubDir(%q, %q) = %q has component %q", template, values, got, c)
			}
		}
		if first, _, _ := strings.Cut(got, "/"); first == MetadataDirName {
			t.Fatalf("ExpandSubDir(%q, %q) = %q is under %s", template, values, got, MetadataDirName)
		}
		const root = "/share-root-sentinel"
		if j := path.Join(root, got); !strings.HasPrefix(j, root+"/") {
			t.Fatalf("ExpandSubDir(%q, %q) = %q leaves the root: %q", template, values, got, j)
		}
		if err := ValidateSubDir(got); err != nil {
			t.Fatalf("ExpandSubDir(%q, %q) = %q fails ValidateSubDir: %v", template, values, got, err)
		}
		// Whatever a value contains, it ends up inside one component: the
		// template alone decides the directory depth.
		if strings.Count(got, "/") != strings.Count(stripVariables(template), "/") {
			t.Fatalf("ExpandSubDir(%q, %q) = %q has a different depth than its template", template, values, got)
		}
	})
}

// stripVariables drops the ${...} references from a template.
func stripVariables(template string) string {
	var b strings.Builder
	for {
		i := strings.Index(template, "${")
		if i < 0 {
			return b.String() + template
		}
		b.WriteString(template[:i])
		end := strings.IndexByte(template[i:], '}')
		if end < 0 {
			return b.String()
		}
		template = template[i+end+1:]
	}
}

func TestCanonicalTemplate(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"${.PVC.namespace}/${.PVC.name}", "${pvc.metadata.namespace}/${pvc.metadata.name}", ""},
		{"k8s/${.PVC.namespace}-${pv.metadata.name}", "k8s/${pvc.metadata.namespace}-${pv.metadata.name}", ""},
		{"fixed", "fixed", ""},
		{"${.PVC.labels.team}/${.PVC.name}", "", "${.PVC.labels.team}"},
		{"${.PVC.annotations.path}", "", "${.PVC.annotations.path}"},
		{"${.PVC.name", "", "unterminated"},
	} {
		got, err := CanonicalTemplate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("CanonicalTemplate(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CanonicalTemplate(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
