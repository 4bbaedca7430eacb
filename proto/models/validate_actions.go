package models

// Validate checks an action tree: exactly one kind per action, the fields
// each kind needs, and a nesting depth of at most MaxActionDepth.
func (a *Action) Validate() error {
	var v validator
	v.action("", a, 1)
	// Problems with the action itself (no kind set) have no field to name
	// at the top level; report them on "action".
	for i := range v.errs {
		if v.errs[i].Field == "" {
			v.errs[i].Field = "action"
		}
	}
	return v.err()
}

// Validate checks every liveness and readiness check.
func (c *CheckDefinition) Validate() error {
	var v validator
	v.checkDefinition("", c)
	return v.err()
}

// requiredAction reports a missing action, else validates it.
func (v *validator) requiredAction(path string, a *Action) {
	if a == nil {
		v.add(path, "must be set")
		return
	}
	v.action(path, a, 1)
}

// optionalAction validates an action only when it is present.
func (v *validator) optionalAction(path string, a *Action) {
	if a != nil {
		v.action(path, a, 1)
	}
}

const actionKinds = "download, upload, run, timeout, emit_progress, try, parallel, serial, codependent"

// action validates a at the given nesting depth (1 for a top-level action).
func (v *validator) action(path string, a *Action, depth int) {
	if depth > MaxActionDepth {
		// Stop here: the rest of the tree is not worth reporting, and a
		// hostile tree could be deep enough to hurt.
		v.add(path, "must not nest more than %d actions deep", MaxActionDepth)
		return
	}
	switch k := a.GetKind().(type) {
	case *Action_Download:
		p := field(path, "download")
		v.notEmpty(field(p, "from"), k.Download.GetFrom())
		v.notEmpty(field(p, "to"), k.Download.GetTo())
		v.checksum(p, k.Download.GetChecksumAlgorithm(), k.Download.GetChecksumValue())
	case *Action_Upload:
		p := field(path, "upload")
		v.notEmpty(field(p, "from"), k.Upload.GetFrom())
		v.notEmpty(field(p, "to"), k.Upload.GetTo())
	case *Action_Run:
		p := field(path, "run")
		v.notEmpty(field(p, "path"), k.Run.GetPath())
		v.env(field(p, "env"), k.Run.GetEnv())
		v.files(field(p, "volume_mounted_files"), k.Run.GetVolumeMountedFiles())
	case *Action_Timeout:
		p := field(path, "timeout")
		v.nestedAction(field(p, "action"), k.Timeout.GetAction(), depth)
		if k.Timeout.GetTimeoutMs() <= 0 {
			v.add(field(p, "timeout_ms"), "must be positive, got %d", k.Timeout.GetTimeoutMs())
		}
	case *Action_EmitProgress:
		v.nestedAction(field(path, "emit_progress.action"), k.EmitProgress.GetAction(), depth)
	case *Action_Try:
		v.nestedAction(field(path, "try.action"), k.Try.GetAction(), depth)
	case *Action_Parallel:
		v.actionList(field(path, "parallel.actions"), k.Parallel.GetActions(), depth)
	case *Action_Serial:
		v.actionList(field(path, "serial.actions"), k.Serial.GetActions(), depth)
	case *Action_Codependent:
		v.actionList(field(path, "codependent.actions"), k.Codependent.GetActions(), depth)
	default:
		v.add(path, "must set exactly one of %s", actionKinds)
	}
}

// nestedAction validates the single child of a wrapping action.
func (v *validator) nestedAction(path string, a *Action, depth int) {
	if a == nil {
		v.add(path, "must be set")
		return
	}
	v.action(path, a, depth+1)
}

// actionList validates the children of parallel, serial and codependent.
func (v *validator) actionList(path string, actions []*Action, depth int) {
	if len(actions) == 0 {
		v.add(path, "must list at least one action")
	}
	for i, a := range actions {
		v.nestedAction(elem(path, i), a, depth)
	}
}

func (v *validator) checkDefinition(path string, c *CheckDefinition) {
	for i, ch := range c.GetChecks() {
		v.check(elem(field(path, "checks"), i), ch)
	}
	for i, ch := range c.GetReadinessChecks() {
		v.check(elem(field(path, "readiness_checks"), i), ch)
	}
}

func (v *validator) check(path string, c *Check) {
	set := 0
	if c.GetTcpCheck() != nil {
		set++
		v.port(field(path, "tcp_check.port"), c.GetTcpCheck().GetPort())
	}
	if c.GetHttpCheck() != nil {
		set++
		v.port(field(path, "http_check.port"), c.GetHttpCheck().GetPort())
	}
	if c.GetExecCheck() != nil {
		set++
		v.notEmpty(field(path, "exec_check.path"), c.GetExecCheck().GetPath())
	}
	if set != 1 {
		v.add(path, "must set exactly one of tcp_check, http_check, exec_check")
	}
}
