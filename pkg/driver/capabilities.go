package driver

import (
	"fmt"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/example/nfs-csi/pkg/nfs"
)

// NFS serves every access mode: the server arbitrates writers, and Kubernetes
// enforces the single-node modes across nodes through attach, and the node
// service enforces SINGLE_NODE_SINGLE_WRITER within a node.
var supportedAccessModes = map[csi.VolumeCapability_AccessMode_Mode]bool{
	csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER:        true,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY:   true,
	csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:    true,
	csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER:  true,
	csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER:   true,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER: true,
	csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:  true,
}

// validateCapability returns a message for the first thing wrong with c, or
// "" when the driver can serve it.
func validateCapability(c *csi.VolumeCapability) string {
	if c == nil {
		return "a volume capability is empty"
	}
	if c.GetBlock() != nil {
		return "block access is not supported: an NFS volume is a file system; use volumeMode: Filesystem"
	}
	mnt := c.GetMount()
	if mnt == nil {
		return "the volume capability has no access type; set mount"
	}
	if err := nfs.ValidateMountOptions(mnt.GetMountFlags()); err != nil {
		return fmt.Sprintf("the volume capability's mount flags: %v", err)
	}
	mode := c.GetAccessMode().GetMode()
	if c.GetAccessMode() == nil || mode == csi.VolumeCapability_AccessMode_UNKNOWN {
		return "the volume capability has no access mode"
	}
	if !supportedAccessModes[mode] {
		return fmt.Sprintf("access mode %v is not supported", mode)
	}
	return ""
}

// validateCapabilities checks a non-empty list.
func validateCapabilities(caps []*csi.VolumeCapability) string {
	if len(caps) == 0 {
		return "volume capabilities are required"
	}
	for _, c := range caps {
		if msg := validateCapability(c); msg != "" {
			return msg
		}
	}
	return ""
}

// capabilityMountFlags collects the mount flags of all capabilities; they
// carry the StorageClass's and the PV's mountOptions.
func capabilityMountFlags(caps ...*csi.VolumeCapability) []string {
	var lists [][]string
	for _, c := range caps {
		lists = append(lists, c.GetMount().GetMountFlags())
	}
	return nfs.MergeMountOptions(lists...)
}

// isReadOnlyMode reports access modes whose mounts must be read-only.
func isReadOnlyMode(c *csi.VolumeCapability) bool {
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return true
	}
	return false
}
