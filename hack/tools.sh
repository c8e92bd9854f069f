#!/usr/bin/env bash
# Shared helper: pinned tools for nfs-csi's packaging scripts. Source it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
#   nfs_csi::helm; trap nfs_csi::cleanup EXIT
#   "$NFS_CSI_HELM" template ...     # helm, installed if missing
#   nfs_csi::qemu riscv64            # path to qemu-riscv64-static, installed if missing
#
# Tools are installed outside the repository, in a cache keyed by version:
#   ${NFS_CSI_TOOLS:-$HOME/.cache/nfs-csi/tools}/<tool>-<version>/
# and reused when present. Go tools come from the Go module proxy (go install
# with GOBIN); qemu-user comes from Debian (apt-get). Nothing else is fetched.
# Works on a fresh Debian 12 machine as root with only Go installed.

NFS_CSI_ROOT=${NFS_CSI_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
NFS_CSI_TOOLS=${NFS_CSI_TOOLS:-${HOME:-/root}/.cache/nfs-csi/tools}

# Pinned versions.
NFS_CSI_HELM_VERSION=v3.22.0
# Helm's release build stamps its version and the Kubernetes version it
# assumes without a cluster (its client-go minor, 0.37 -> 1.37) with -ldflags;
# a bare `go install` would say "v3.22" and assume Kubernetes v1.20.0, which
# the chart's kubeVersion (>=1.26) refuses. nfs_csi::helm stamps the same.
NFS_CSI_HELM_K8S_MINOR=37
# Kubernetes version the scripts' helm template/lint pass (--kube-version), so
# that the rendering does not depend on how helm was built.
NFS_CSI_KUBE_VERSION=1.33.0
# kubecheck: a tiny strict decoder of rendered manifests into the k8s.io/api
# types (same versions as helm v3.22.0 uses, so the module cache is shared).
NFS_CSI_K8S_API_VERSION=v0.37.0
NFS_CSI_KUSTOMIZE_API_VERSION=v0.21.1
NFS_CSI_SIGS_YAML_VERSION=v1.6.0

nfs_csi::log() { echo "tools.sh: $*" >&2; }

# nfs_csi::go_install DIR PKG@VERSION [GO-INSTALL-FLAGS...]: go install into
# DIR (GOBIN). Prints nothing on stdout; returns go's status.
nfs_csi::go_install() {
  local dir=$1 pkg=$2; shift 2
  mkdir -p "$dir"
  # go install always runs, so that a changed version or flag takes effect;
  # with the binary and the build cache in place it only checks them.
  [[ -x $dir/$(basename "${pkg%@*}") ]] ||
    nfs_csi::log "installing ${pkg} into ${dir} (first time only; a few minutes)"
  # GOFLAGS from the caller (e.g. -mod=vendor) must not leak into the install.
  GOBIN=$dir GOFLAGS= CGO_ENABLED=0 go install "$@" "$pkg" >&2
}

# nfs_csi::helm: installs helm of the pinned version if missing and sets, in
# the calling shell (do not call it in $(...)):
#   NFS_CSI_HELM       path of the helm binary
#   HELM_CACHE_HOME, HELM_CONFIG_HOME, HELM_DATA_HOME  under NFS_CSI_HELM_HOME,
#                      a private temporary directory, so that helm never reads
#                      the user's repositories or reaches the network
# Remove "$NFS_CSI_HELM_HOME" when done (nfs_csi::cleanup does).
nfs_csi::helm() {
  local dir=$NFS_CSI_TOOLS/helm-$NFS_CSI_HELM_VERSION h=helm.sh/helm/v3
  NFS_CSI_HELM=$dir/helm
  # Reuse the cached binary only if it is the stamped build of the pin.
  if [[ $("$NFS_CSI_HELM" version --template '{{.Version}}' 2>/dev/null) != "$NFS_CSI_HELM_VERSION" ]]; then
    nfs_csi::go_install "$dir" "$h/cmd/helm@${NFS_CSI_HELM_VERSION}" -trimpath -ldflags "-s -w \
      -X $h/internal/version.version=${NFS_CSI_HELM_VERSION} \
      -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=${NFS_CSI_HELM_K8S_MINOR} \
      -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=${NFS_CSI_HELM_K8S_MINOR}" || return 1
  fi
  if [[ -z ${NFS_CSI_HELM_HOME:-} ]]; then
    NFS_CSI_HELM_HOME=$(mktemp -d "${TMPDIR:-/tmp}/nfs-csi-helm.XXXXXX") || return 1
  fi
  export HELM_CACHE_HOME=$NFS_CSI_HELM_HOME/cache
  export HELM_CONFIG_HOME=$NFS_CSI_HELM_HOME/config
  export HELM_DATA_HOME=$NFS_CSI_HELM_HOME/data
}

# nfs_csi::cleanup: removes what nfs_csi::helm created. For an EXIT trap.
nfs_csi::cleanup() {
  [[ -n ${NFS_CSI_HELM_HOME:-} ]] && rm -rf "$NFS_CSI_HELM_HOME"
  NFS_CSI_HELM_HOME=
}

# nfs_csi::qemu ARCH: path of qemu-ARCH-static (ARCH as qemu names it:
# riscv64, aarch64, arm, ppc64le, s390x). Installs Debian's qemu-user-static
# when missing. binfmt_misc is not needed: callers run "qemu-ARCH-static BIN".
nfs_csi::qemu() {
  local arch=$1 bin
  bin=$(command -v "qemu-${arch}-static" || true)
  if [[ -z $bin ]]; then
    nfs_csi::log "installing qemu-user-static with apt-get (qemu-${arch}-static missing)"
    if [[ $(id -u) -ne 0 ]]; then
      nfs_csi::log "not root: run 'apt-get install -y qemu-user-static' as root"
      return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq qemu-user-static >&2 || return 1
    bin=$(command -v "qemu-${arch}-static" || true)
    [[ -n $bin ]] || { nfs_csi::log "qemu-${arch}-static still missing"; return 1; }
  fi
  echo "$bin"
}

# nfs_csi::version_env: VERSION, GIT_COMMIT, BUILD_DATE and LDFLAGS as the
# Makefile computes them, for scripts run directly rather than through make.
# Values already in the environment (make exports them) win.
nfs_csi::version_env() {
  local pkg=github.com/example/nfs-csi
  : "${VERSION:=$(git -C "$NFS_CSI_ROOT" describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)}"
  : "${GIT_COMMIT:=$(git -C "$NFS_CSI_ROOT" rev-parse --verify --quiet HEAD 2>/dev/null || echo unknown)}"
  : "${BUILD_DATE:=$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
  : "${LDFLAGS:=-s -w -X ${pkg}/pkg/driver.driverVersion=${VERSION} -X ${pkg}/pkg/driver.gitCommit=${GIT_COMMIT} -X ${pkg}/pkg/driver.buildDate=${BUILD_DATE}}"
  export VERSION GIT_COMMIT BUILD_DATE LDFLAGS
}

# nfs_csi::build_driver: bin/nfs-csi for this machine, version-stamped as
# the Makefile's build target stamps it.
nfs_csi::build_driver() {
  nfs_csi::version_env
  (cd "$NFS_CSI_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "$LDFLAGS" -o bin/nfs-csi ./cmd/nfs-csi)
}

# nfs_csi::kubecheck: path of kubecheck, built from the source below in its
# own throwaway module (the project's go.mod is not touched). Subcommands:
#   kubecheck strict FILE...   decode every YAML document of each FILE into its
#                              k8s.io/api type, rejecting unknown fields; print
#                              one line of facts per object (see factsOf)
#   kubecheck kustomize DIR    print what `kubectl apply -k DIR` would apply
#                              (kustomize's API, the one kubectl embeds)
#   kubecheck values SCHEMA    print the dotted path of every value that
#                              values.schema.json describes (objects with
#                              properties are walked; others are leaves)
nfs_csi::kubecheck() {
  local src sum dir
  src=$(nfs_csi::kubecheck_source)
  sum=$(printf '%s\n%s %s %s\n' "$src" "$NFS_CSI_K8S_API_VERSION" "$NFS_CSI_KUSTOMIZE_API_VERSION" "$NFS_CSI_SIGS_YAML_VERSION" | sha256sum | cut -c1-12)
  dir=$NFS_CSI_TOOLS/kubecheck-$NFS_CSI_K8S_API_VERSION-$sum
  if [[ ! -x $dir/kubecheck ]]; then
    nfs_csi::log "building kubecheck into ${dir} (first time only)"
    mkdir -p "$dir/src"
    printf '%s\n' "$src" >"$dir/src/main.go"
    cat >"$dir/src/go.mod" <<EOF
module nfs-csi.local/kubecheck

go 1.24

require (
	k8s.io/api $NFS_CSI_K8S_API_VERSION
	k8s.io/apimachinery $NFS_CSI_K8S_API_VERSION
	sigs.k8s.io/kustomize/api $NFS_CSI_KUSTOMIZE_API_VERSION
	sigs.k8s.io/kustomize/kyaml $NFS_CSI_KUSTOMIZE_API_VERSION
	sigs.k8s.io/yaml $NFS_CSI_SIGS_YAML_VERSION
)
EOF
    (cd "$dir/src" && GOFLAGS=-mod=mod GOWORK=off go mod tidy >&2 &&
      GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 go build -o "$dir/kubecheck" . >&2) || return 1
  fi
  echo "$dir/kubecheck"
}

nfs_csi::kubecheck_source() {
  cat <<'GO'
// kubecheck strictly decodes rendered Kubernetes manifests into their
// k8s.io/api types and prints facts about them for shell assertions.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

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
	}
	return nil
}

func containerFacts(prefix string, spec corev1.PodSpec) []string {
	var out []string
	out = append(out, fmt.Sprintf("%s.hostNetwork=%v", prefix, spec.HostNetwork))
	out = append(out, fmt.Sprintf("%s.serviceAccountName=%s", prefix, spec.ServiceAccountName))
	if spec.AutomountServiceAccountToken != nil {
		out = append(out, fmt.Sprintf("%s.automountServiceAccountToken=%v", prefix, *spec.AutomountServiceAccountToken))
	}
	for _, t := range spec.Tolerations {
		out = append(out, fmt.Sprintf("%s.toleration=%s:%s:%s", prefix, t.Key, t.Operator, t.Effect))
	}
	for _, v := range spec.Volumes {
		switch {
		case v.HostPath != nil:
			out = append(out, fmt.Sprintf("%s.volume.%s=hostPath:%s", prefix, v.Name, v.HostPath.Path))
		case v.EmptyDir != nil:
			out = append(out, fmt.Sprintf("%s.volume.%s=emptyDir", prefix, v.Name))
		}
	}
	for _, c := range spec.Containers {
		p := prefix + ".container." + c.Name
		out = append(out, p+".image="+c.Image)
		for _, a := range c.Args {
			out = append(out, p+".arg="+a)
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				out = append(out, fmt.Sprintf("%s.env.%s=fieldRef:%s", p, e.Name, e.ValueFrom.FieldRef.FieldPath))
			}
		}
		if sc := c.SecurityContext; sc != nil && sc.Privileged != nil {
			out = append(out, fmt.Sprintf("%s.privileged=%v", p, *sc.Privileged))
		}
		for _, m := range c.VolumeMounts {
			prop := "None"
			if m.MountPropagation != nil {
				prop = string(*m.MountPropagation)
			}
			out = append(out, fmt.Sprintf("%s.mount.%s=%s:%s", p, m.Name, m.MountPath, prop))
		}
		if lp := c.LivenessProbe; lp != nil && lp.HTTPGet != nil {
			out = append(out, fmt.Sprintf("%s.livenessProbe=%s:%s", p, lp.HTTPGet.Path, lp.HTTPGet.Port.String()))
		}
		for _, port := range c.Ports {
			out = append(out, fmt.Sprintf("%s.port.%s=%d", p, port.Name, port.ContainerPort))
		}
	}
	return out
}

func rulesFacts(prefix string, rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, fmt.Sprintf("%s.rule=%s|%s|%s|%s", prefix,
			strings.Join(r.APIGroups, ","), strings.Join(r.Resources, ","),
			strings.Join(r.Verbs, ","), strings.Join(r.ResourceNames, ",")))
	}
	return out
}

func bindingFacts(p string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) []string {
	out := []string{p, p + ".roleRef=" + ref.Kind + "/" + ref.Name}
	for _, s := range subjects {
		out = append(out, p+".subject="+s.Kind+"/"+s.Namespace+"/"+s.Name)
	}
	return out
}

func factsOf(obj any) []string {
	switch o := obj.(type) {
	case *storagev1.CSIDriver:
		p := "CSIDriver/" + o.Name
		out := []string{p}
		if o.Spec.AttachRequired != nil {
			out = append(out, fmt.Sprintf("%s.attachRequired=%v", p, *o.Spec.AttachRequired))
		}
		if o.Spec.PodInfoOnMount != nil {
			out = append(out, fmt.Sprintf("%s.podInfoOnMount=%v", p, *o.Spec.PodInfoOnMount))
		}
		if o.Spec.FSGroupPolicy != nil {
			out = append(out, fmt.Sprintf("%s.fsGroupPolicy=%s", p, *o.Spec.FSGroupPolicy))
		}
		var modes []string
		for _, m := range o.Spec.VolumeLifecycleModes {
			modes = append(modes, string(m))
		}
		return append(out, p+".volumeLifecycleModes="+strings.Join(modes, ","))
	case *appsv1.Deployment:
		p := "Deployment/" + o.Name
		out := []string{p}
		if o.Spec.Replicas != nil {
			out = append(out, fmt.Sprintf("%s.replicas=%d", p, *o.Spec.Replicas))
		}
		return append(out, containerFacts(p, o.Spec.Template.Spec)...)
	case *appsv1.DaemonSet:
		p := "DaemonSet/" + o.Name
		return append([]string{p}, containerFacts(p, o.Spec.Template.Spec)...)
	case *appsv1.StatefulSet:
		p := "StatefulSet/" + o.Name
		return append([]string{p}, containerFacts(p, o.Spec.Template.Spec)...)
	case *corev1.Pod:
		p := "Pod/" + o.Name
		return append([]string{p}, containerFacts(p, o.Spec)...)
	case *rbacv1.ClusterRole:
		return append([]string{"ClusterRole/" + o.Name}, rulesFacts("ClusterRole/"+o.Name, o.Rules)...)
	case *rbacv1.Role:
		return append([]string{"Role/" + o.Name}, rulesFacts("Role/"+o.Name, o.Rules)...)
	case *rbacv1.ClusterRoleBinding:
		return bindingFacts("ClusterRoleBinding/"+o.Name, o.RoleRef, o.Subjects)
	case *rbacv1.RoleBinding:
		return bindingFacts("RoleBinding/"+o.Name, o.RoleRef, o.Subjects)
	case *corev1.ServiceAccount:
		p := "ServiceAccount/" + o.Name
		out := []string{p}
		if o.AutomountServiceAccountToken != nil {
			out = append(out, fmt.Sprintf("%s.automountServiceAccountToken=%v", p, *o.AutomountServiceAccountToken))
		}
		return out
	case *storagev1.StorageClass:
		p := "StorageClass/" + o.Name
		out := []string{p, p + ".provisioner=" + o.Provisioner}
		keys := make([]string, 0, len(o.Parameters))
		for k := range o.Parameters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, p+".parameter."+k+"="+o.Parameters[k])
		}
		for k, v := range o.Annotations {
			out = append(out, p+".annotation."+k+"="+v)
		}
		if o.ReclaimPolicy != nil {
			out = append(out, p+".reclaimPolicy="+string(*o.ReclaimPolicy))
		}
		if o.VolumeBindingMode != nil {
			out = append(out, p+".volumeBindingMode="+string(*o.VolumeBindingMode))
		}
		if o.AllowVolumeExpansion != nil {
			out = append(out, fmt.Sprintf("%s.allowVolumeExpansion=%v", p, *o.AllowVolumeExpansion))
		}
		if len(o.MountOptions) > 0 {
			out = append(out, p+".mountOptions="+strings.Join(o.MountOptions, ","))
		}
		return out
	case *corev1.Service:
		return []string{"Service/" + o.Name}
	case *corev1.PersistentVolumeClaim:
		p := "PersistentVolumeClaim/" + o.Name
		sc := ""
		if o.Spec.StorageClassName != nil {
			sc = *o.Spec.StorageClassName
		}
		return []string{p, p + ".storageClassName=" + sc}
	}
	return nil
}

func strict(files []string) error {
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for i, doc := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				return fmt.Errorf("%s: document %d: %v", f, i, err)
			}
			if meta.Kind == "" {
				continue // comments only
			}
			obj := newObject(meta.APIVersion, meta.Kind)
			if obj == nil {
				return fmt.Errorf("%s: document %d: unexpected %s %s", f, i, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				return fmt.Errorf("%s: %s %s: %v", f, meta.Kind, meta.Metadata.Name, err)
			}
			for _, fact := range factsOf(obj) {
				fmt.Println(fact)
			}
			n++
		}
	}
	fmt.Printf("objects=%d\n", n)
	return nil
}

func kustomize(dir string) error {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return err
	}
	out, err := m.AsYaml()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}

// valuePaths walks a values.schema.json: every property is printed, objects
// with properties are descended into ($ref and the first allOf resolved).
func valuePaths(file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		return err
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
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		m = resolve(m)
		props, ok := m["properties"].(map[string]any)
		if !ok || prefix == "global" || strings.HasSuffix(prefix, ".resources") {
			fmt.Println(prefix)
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
	return nil
}

func main() {
	var err error
	switch {
	case len(os.Args) >= 3 && os.Args[1] == "strict":
		err = strict(os.Args[2:])
	case len(os.Args) == 3 && os.Args[1] == "kustomize":
		err = kustomize(os.Args[2])
	case len(os.Args) == 3 && os.Args[1] == "values":
		err = valuePaths(os.Args[2])
	default:
		err = fmt.Errorf("usage: kubecheck strict FILE... | kubecheck kustomize DIR | kubecheck values SCHEMA")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubecheck:", err)
		os.Exit(1)
	}
}
GO
}
