package driver

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/example/nfs-csi/pkg/nfs"
)

// StorageClass parameter names. Matching is case-insensitive, as admins
// coming from other NFS provisioners write "subdir" and "subDir" alike.
const (
	ParamServer           = "server"
	ParamShare            = "share"
	ParamSubDir           = "subDir"
	ParamOnDelete         = "onDelete"
	ParamArchiveOnDelete  = "archiveOnDelete"
	ParamMountPermissions = "mountPermissions"
	ParamMountOptions     = "mountOptions"
	ParamAdoptExisting    = "adoptExisting"
	// ParamPathPattern is nfs-subdir-external-provisioner's name for subDir,
	// so that its StorageClasses carry over; its ${.PVC.namespace} and
	// ${.PVC.name} work in either.
	ParamPathPattern = "pathPattern"
	// ParamCapacity is "enforced" (a project quota set by the quota agent
	// on the NFS server) or "recorded" (the default: the size is only
	// remembered, as NFS subdirectories have no size of their own).
	ParamCapacity = "capacity"
	// ParamQuotaAgent is host:port of the quota agent (nfs-csi agent).
	ParamQuotaAgent = "quotaAgent"

	// csiParamPrefix marks parameters the external-provisioner adds or
	// consumes itself; they are not the admin's to get wrong.
	csiParamPrefix = "csi.storage.k8s.io/"
)

var knownParams = []string{ParamServer, ParamShare, ParamSubDir, ParamOnDelete, ParamArchiveOnDelete, ParamMountPermissions, ParamMountOptions, ParamAdoptExisting, ParamPathPattern, ParamCapacity, ParamQuotaAgent}

// The values of ParamCapacity.
const (
	CapacityRecorded = "recorded"
	CapacityEnforced = "enforced"
)

// createParams is a validated CreateVolume parameter set.
type createParams struct {
	Server           string
	Share            string
	SubDirTemplate   string // empty: the volume name
	OnDelete         nfs.OnDelete
	MountPermissions *uint32
	MountOptions     []string
	TemplateValues   map[string]string
	// AdoptExisting lets a new volume take over a directory that exists with
	// no record, data included.
	AdoptExisting bool
	// QuotaAgent is the agent that enforces the capacity; empty when the
	// class does not ask for enforcement.
	QuotaAgent string
}

// parseCreateParams validates the StorageClass parameters. Every error names
// the parameter and says what is expected.
func parseCreateParams(params map[string]string) (createParams, error) {
	p := createParams{OnDelete: nfs.OnDeleteDelete, TemplateValues: map[string]string{}}
	var onDelete, archiveOnDelete, capacity string
	var haveOnDelete, haveArchive bool
	var subDirKey string
	seen := map[string]string{}
	for key, value := range params {
		if prev, dup := seen[canonicalParam(key)]; dup {
			return p, fmt.Errorf("parameters %q and %q are the same parameter (names are case-insensitive); keep one", prev, key)
		}
		seen[canonicalParam(key)] = key
		if strings.HasPrefix(key, csiParamPrefix) {
			for variable, source := range nfs.TemplateSources {
				if key == source {
					p.TemplateValues[variable] = value
				}
			}
			continue
		}
		switch canonicalParam(key) {
		case ParamServer:
			p.Server = strings.TrimSpace(value)
		case ParamShare:
			p.Share = strings.TrimSpace(value)
		case ParamSubDir, ParamPathPattern:
			if subDirKey != "" {
				return p, fmt.Errorf("parameters %q and %q both choose the directory (pathPattern is nfs-subdir-external-provisioner's name for subDir); keep one", subDirKey, key)
			}
			subDirKey = key
			p.SubDirTemplate = strings.TrimSpace(value)
		case ParamOnDelete:
			onDelete, haveOnDelete = strings.ToLower(strings.TrimSpace(value)), true
		case ParamArchiveOnDelete:
			archiveOnDelete, haveArchive = strings.ToLower(strings.TrimSpace(value)), true
		case ParamMountPermissions:
			perm, err := parseMountPermissions(value)
			if err != nil {
				return p, err
			}
			p.MountPermissions = perm
		case ParamAdoptExisting:
			switch strings.ToLower(strings.TrimSpace(value)) {
			case "true":
				p.AdoptExisting = true
			case "false":
			default:
				return p, fmt.Errorf("parameter %s is %q; want \"true\" (hand an existing directory that no volume record claims, data included, to the new volume) or \"false\"", ParamAdoptExisting, value)
			}
		case ParamCapacity:
			capacity = strings.ToLower(strings.TrimSpace(value))
		case ParamQuotaAgent:
			p.QuotaAgent = strings.TrimSpace(value)
		case ParamMountOptions:
			opts, err := nfs.ParseMountOptions(value)
			if err != nil {
				return p, fmt.Errorf("parameter %s: %w", ParamMountOptions, err)
			}
			p.MountOptions = opts
		default:
			return p, fmt.Errorf("unknown StorageClass parameter %q; the known parameters are %s", key, strings.Join(knownParams, ", "))
		}
	}
	if p.Server == "" {
		return p, fmt.Errorf("StorageClass parameter %q is required: the NFS server's hostname or IP address", ParamServer)
	}
	if err := nfs.ValidateServer(p.Server); err != nil {
		return p, fmt.Errorf("parameter %s: %w", ParamServer, err)
	}
	if p.Share == "" {
		return p, fmt.Errorf("StorageClass parameter %q is required: the exported path, such as /srv/nfs", ParamShare)
	}
	if err := nfs.ValidateShare(p.Share); err != nil {
		return p, fmt.Errorf("parameter %s: %w", ParamShare, err)
	}
	if err := p.parseCapacity(capacity); err != nil {
		return p, err
	}
	if haveOnDelete {
		policy, err := nfs.ParseOnDelete(onDelete)
		if err != nil {
			return p, fmt.Errorf("parameter %s: %w", ParamOnDelete, err)
		}
		p.OnDelete = policy
	}
	if haveArchive {
		var fromArchive nfs.OnDelete
		switch archiveOnDelete {
		case "true":
			fromArchive = nfs.OnDeleteArchive
		case "false":
			fromArchive = nfs.OnDeleteDelete
		default:
			return p, fmt.Errorf("parameter %s is %q; want \"true\" or \"false\"", ParamArchiveOnDelete, archiveOnDelete)
		}
		if haveOnDelete && fromArchive != p.OnDelete {
			return p, fmt.Errorf("parameters %s=%s and %s=%s disagree; keep only %s", ParamOnDelete, p.OnDelete, ParamArchiveOnDelete, archiveOnDelete, ParamOnDelete)
		}
		p.OnDelete = fromArchive
	}
	return p, nil
}

// parseCapacity checks the capacity and quotaAgent parameters together: an
// agent without enforcement, or enforcement without an agent, is a mistake
// the admin should hear about, not a class that silently does not enforce.
func (p *createParams) parseCapacity(capacity string) error {
	switch capacity {
	case "", CapacityRecorded:
		if p.QuotaAgent != "" {
			return fmt.Errorf("parameter %s is set but %s is not %q; set %s: %s to enforce the capacity, or remove %s", ParamQuotaAgent, ParamCapacity, CapacityEnforced, ParamCapacity, CapacityEnforced, ParamQuotaAgent)
		}
		return nil
	case CapacityEnforced:
		if p.QuotaAgent == "" {
			return fmt.Errorf("parameter %s: %s needs %s, the host:port of the nfs-csi agent on the NFS server (docs/capacity.md)", ParamCapacity, CapacityEnforced, ParamQuotaAgent)
		}
		host, port, err := net.SplitHostPort(p.QuotaAgent)
		if err == nil && port == "" {
			err = fmt.Errorf("no port")
		}
		if err == nil {
			err = nfs.ValidateServer(host)
		}
		if err != nil {
			return fmt.Errorf("parameter %s is %q; want host:port of the nfs-csi agent, such as nfs.example.internal:9820: %v", ParamQuotaAgent, p.QuotaAgent, err)
		}
		return nil
	}
	return fmt.Errorf("parameter %s is %q; want %q (a project quota on the server holds the volume to its size) or %q (the size is only recorded)", ParamCapacity, capacity, CapacityEnforced, CapacityRecorded)
}

func canonicalParam(key string) string {
	for _, k := range knownParams {
		if strings.EqualFold(k, key) {
			return k
		}
	}
	return key
}

// parseMountPermissions reads an octal mode such as "0777" or "2775". "0"
// means no chmod, as in csi-driver-nfs, so classes carry over unchanged.
func parseMountPermissions(s string) (*uint32, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return nil, fmt.Errorf("parameter %s is %q; want an octal mode such as 0777 or 2775", ParamMountPermissions, s)
	}
	if v == 0 {
		return nil, nil
	}
	perm := uint32(v)
	return &perm, nil
}

// formatPermissions renders a mode for records and comparisons.
func formatPermissions(p *uint32) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%04o", *p)
}

// VolumeContext is what NodePublishVolume needs, stored in the PV's
// volumeAttributes.
func VolumeContext(v nfs.Volume) map[string]string {
	ctx := map[string]string{ParamServer: v.Server, ParamShare: v.Share, ParamSubDir: v.SubDir}
	if len(v.MountOptions) > 0 {
		ctx[ParamMountOptions] = strings.Join(v.MountOptions, ",")
	}
	return ctx
}
