package nfs

import (
	"fmt"
	"strings"
)

// Template variables a StorageClass subDir may use, and the CreateVolume
// parameters csi-provisioner --extra-create-metadata fills them from.
const (
	VarPVCName      = "pvc.metadata.name"
	VarPVCNamespace = "pvc.metadata.namespace"
	VarPVName       = "pv.metadata.name"
)

// TemplateSources maps each variable to the parameter that carries its value,
// so that an error can tell the admin which sidecar flag is missing.
var TemplateSources = map[string]string{
	VarPVCName:      "csi.storage.k8s.io/pvc/name",
	VarPVCNamespace: "csi.storage.k8s.io/pvc/namespace",
	VarPVName:       "csi.storage.k8s.io/pv/name",
}

// PathPatternAliases are nfs-subdir-external-provisioner's pathPattern
// variables that mean one of ours, so that its StorageClasses' patterns work
// unchanged.
var PathPatternAliases = map[string]string{
	".PVC.namespace": VarPVCNamespace,
	".PVC.name":      VarPVCName,
}

// ErrClaimMetadataVariable marks nfs-subdir-external-provisioner's
// ${.PVC.labels.X} and ${.PVC.annotations.X}, which this driver refuses.
var ErrClaimMetadataVariable = fmt.Errorf("claim labels and annotations cannot choose a volume's directory")

// templateVariable resolves a variable as written: one of ours, or an alias.
func templateVariable(template, name string) (string, error) {
	if _, ok := TemplateSources[name]; ok {
		return name, nil
	}
	if v, ok := PathPatternAliases[name]; ok {
		return v, nil
	}
	for _, kind := range []string{"labels", "annotations"} {
		if strings.HasPrefix(name, ".PVC."+kind+".") {
			return "", fmt.Errorf("subDir template %q uses ${%s}: %w. csi-provisioner passes CreateVolume only the claim's name and namespace, not its %s, "+
				"and a claim's users can set and change its %s, so a directory chosen by them could be another claim's; "+
				"use ${.PVC.namespace}, ${.PVC.name} and ${pv.metadata.name}, or fixed text",
				template, name, ErrClaimMetadataVariable, kind, kind)
		}
	}
	return "", fmt.Errorf("subDir template %q uses unknown variable ${%s}; known: ${%s}, ${%s}, ${%s} (or nfs-subdir-external-provisioner's ${.PVC.namespace}, ${.PVC.name})",
		template, name, VarPVCNamespace, VarPVCName, VarPVName)
}

// scanTemplate calls literal for each run of text and variable for each
// ${...} of template, with the variable's canonical name.
func scanTemplate(template string, literal func(string), variable func(name string) error) error {
	rest := template
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			literal(rest)
			return nil
		}
		literal(rest[:i])
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return fmt.Errorf("subDir template %q has an unterminated ${", template)
		}
		name, err := templateVariable(template, rest[i+2:i+end])
		if err != nil {
			return err
		}
		if err := variable(name); err != nil {
			return err
		}
		rest = rest[i+end+1:]
	}
}

// CanonicalTemplate rewrites template with this driver's variable names
// (nfs-subdir-external-provisioner's aliases replaced), checking every
// variable as ExpandSubDir does.
func CanonicalTemplate(template string) (string, error) {
	var b strings.Builder
	err := scanTemplate(template, func(s string) { b.WriteString(s) }, func(name string) error {
		b.WriteString("${" + name + "}")
		return nil
	})
	return b.String(), err
}

// ExpandSubDir fills ${...} variables in a subDir template. Every value must
// be a single plain path component, and the result must pass ValidateSubDir
// and be non-empty, so no template and no PVC name can reach outside the share
// or the share root itself.
func ExpandSubDir(template string, values map[string]string) (string, error) {
	var b strings.Builder
	err := scanTemplate(template, func(s string) { b.WriteString(s) }, func(name string) error {
		value, ok := values[name]
		if !ok || value == "" {
			return fmt.Errorf("subDir template %q uses ${%s}, but CreateVolume has no %s parameter; run csi-provisioner with --extra-create-metadata",
				template, name, TemplateSources[name])
		}
		if err := ValidateComponent(value); err != nil {
			return fmt.Errorf("subDir template %q: value of ${%s}: %w", template, name, err)
		}
		b.WriteString(value)
		return nil
	})
	if err != nil {
		return "", err
	}
	subDir := b.String()
	if subDir == "" {
		return "", fmt.Errorf("subDir template %q expands to the share root; a volume needs its own directory", template)
	}
	if err := ValidateSubDir(subDir); err != nil {
		return "", fmt.Errorf("subDir template %q: %w", template, err)
	}
	return subDir, nil
}
