package agenttest

import (
	"golang.org/x/sys/unix"

	"github.com/example/nfs-csi/pkg/nfs"
)

// WithRecords runs f with the record directory of the share root dir open
// (created when missing), as the controller keeps it: tests write the
// creation records the agent checks with it.
func WithRecords(dir string, f func(recFd int) error) error {
	rootFd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootFd)
	recFd, err := nfs.OpenRecordDir(rootFd)
	if err != nil {
		return err
	}
	defer unix.Close(recFd)
	return f(recFd)
}

// CreateRecord writes the creation record CreateVolume would have written
// for subDir below the share root dir, naming the volume id.
func CreateRecord(dir, subDir, id string) error {
	return WithRecords(dir, func(recFd int) error {
		return nfs.CreateRecord(recFd, subDir, nfs.Record{VolumeID: id, Name: id})
	})
}
