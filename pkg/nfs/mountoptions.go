package nfs

import (
	"fmt"
	"strings"
)

// CheckMountOptions refuses a list of NFS mount options that mount.nfs is
// sure to refuse: more than one NFS version option (vers= or nfsvers=, even
// with the same value). A StorageClass whose mountOptions say nfsvers=4.1 and
// a parameter or capability that adds nfsvers=3 used to reach the share
// mount, fail there with "mount.nfs: multiple version options not permitted"
// as an Internal error, and be retried forever; the caller reports this as
// InvalidArgument instead, before anything is mounted.
func CheckMountOptions(opts []string) error {
	var versions []string
	for _, o := range opts {
		key, _, _ := strings.Cut(o, "=")
		if k := strings.ToLower(strings.TrimSpace(key)); k == "vers" || k == "nfsvers" {
			versions = append(versions, o)
		}
	}
	if len(versions) > 1 {
		return fmt.Errorf("mount options %s name the NFS version %d times (%s); mount.nfs accepts one vers= or nfsvers= option: keep one in the StorageClass's mountOptions (or the PV's)",
			strings.Join(opts, ","), len(versions), strings.Join(versions, ", "))
	}
	return nil
}
