package nfs

// String names the failure class as the metrics label and the docs spell it.
func (f MountFailure) String() string {
	switch f {
	case MountAccessDenied:
		return "access_denied"
	case MountNoSuchExport:
		return "no_such_export"
	case MountServerUnreachable:
		return "server_unreachable"
	case MountTimedOut:
		return "timed_out"
	case MountVersionUnsupported:
		return "version_unsupported"
	case MountHelperMissing:
		return "helper_missing"
	case MountStatdMissing:
		return "statd_missing"
	}
	return "other"
}

// MountFailures lists every failure class, for metrics that start each
// class's counter at zero.
var MountFailures = []MountFailure{
	MountFailedOther, MountAccessDenied, MountNoSuchExport, MountServerUnreachable,
	MountTimedOut, MountVersionUnsupported, MountHelperMissing, MountStatdMissing,
}
