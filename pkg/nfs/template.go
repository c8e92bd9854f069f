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

// ExpandSubDir fills ${...} variables in a subDir template. Every value must
// be a single plain path component, and the result must pass ValidateSubDir
// and be non-empty, so no template and no PVC name can reach outside the share
// or the share root itself.
func ExpandSubDir(template string, values map[string]string) (string, error) {
	var b strings.Builder
	rest := template
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("subDir template %q has an unterminated ${", template)
		}
		name := rest[i+2 : i+end]
		source, known := TemplateSources[name]
		if !known {
			return "", fmt.Errorf("subDir template %q uses unknown variable ${%s}; known: ${%s}, ${%s}, ${%s}",
				template, name, VarPVCNamespace, VarPVCName, VarPVName)
		}
		value, ok := values[name]
		if !ok || value == "" {
			return "", fmt.Errorf("subDir template %q uses ${%s}, but CreateVolume has no %s parameter; run csi-provisioner with --extra-create-metadata",
				template, name, source)
		}
		if err := ValidateComponent(value); err != nil {
			return "", fmt.Errorf("subDir template %q: value of ${%s}: %w", template, name, err)
		}
		b.WriteString(value)
		rest = rest[i+end+1:]
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
