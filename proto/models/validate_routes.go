package models

// Validate checks the process guid filter when it is set.
func (r *ListRoutesRequest) Validate() error {
	if r.GetProcessGuid() == "" {
		return nil
	}
	var v validator
	v.guid("process_guid", r.GetProcessGuid())
	return v.err()
}
