package api

import (
	"net/http"

	"github.com/moat-sg/moat/internal/neutron"
)

// extension is one entry of GET /v2.0/extensions.
type extension struct {
	Alias, Name, Description, Updated string
}

// extensions lists exactly the Neutron API extensions moat implements, with
// Neutron 21's names, descriptions and dates, in Neutron's order.
var extensions = []extension{
	{"address-group", "Address group", "Support address group", "2020-07-15T10:00:00-00:00"},
	{"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs", "2013-07-23T10:00:00-00:00"},
	{"empty-string-filtering", "Empty String Filtering Extension", "Allow filtering by attributes with empty string value", "2018-05-01T10:00:00-00:00"},
	{"filter-validation", "Filter parameters validation", "Provides validation on filter parameters.", "2018-07-04T10:00:00-00:00"},
	{"logging", "Logging API Extension", "Provides a logging API for resources such as security group and firewall.", "2017-01-01T10:00:00-00:00"},
	{"net-mtu", "Network MTU", "Provides MTU attribute for a network resource.", "2015-03-25T10:00:00-00:00"},
	{"net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource.", "2017-07-12T00:00:00-00:00"},
	{"pagination", "Pagination support", "Extension that indicates that pagination is enabled.", "2016-06-12T00:00:00-00:00"},
	{"binding", "Port Binding", "Expose port bindings of a virtual port to external application", "2014-02-03T10:00:00-00:00"},
	{"port-security", "Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"},
	{"project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled.", "2016-09-09T09:09:09-09:09"},
	{"quota-check-limit", "Quota engine limit check", "Support for checking the resource usage before applying a new quota limit", "2021-09-08T16:00:00-00:00"},
	{"provider", "Provider Network", "Expose mapping of virtual networks to physical networks", "2012-09-07T10:00:00-00:00"},
	{"quotas", "Quota management support", "Expose functions for quotas management per project", "2012-07-29T10:00:00-00:00"},
	{"quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project", "2017-02-10T10:00:00-00:00"},
	{"rbac-policies", "RBAC Policies", "Allows creation and modification of policies that control tenant access to resources.", "2015-06-17T12:15:12-00:00"},
	{"rbac-address-group", "Add address_group type to RBAC", "Add address_group type to network RBAC", "2021-01-20T00:00:00-00:00"},
	{"rbac-security-groups", "Add security_group type to network RBAC", "Add security_group type to network RBAC", "2019-02-14T00:00:00-00:00"},
	{"revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported.", "2016-12-11T00:00:00-00:00"},
	{"standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources.", "2016-04-11T10:00:00-00:00"},
	{"security-groups-normalized-cidr", "Normalized CIDR field for security group rules", "Add new field with normalized remote_ip_prefix cidr in SG rule", "2020-07-28T10:00:00-00:00"},
	{"port-security-groups-filtering", "Port filtering on security groups", "Provides security groups filtering when listing ports", "2018-01-09T09:00:00-00:00"},
	{"security-groups-remote-address-group", "Remote address group id field for security group rules", "Add new field of remote address group id in SG rules", "2020-08-25T10:00:00-00:00"},
	{"security-groups-shared-filtering", "Security group filtering on the shared field", "Support filtering security groups on the shared field", "2021-10-05T09:00:00-00:00"},
	{"security-group", "security-group", "The security groups extension.", "2012-10-05T10:00:00-00:00"},
	{"sorting", "Sorting support", "Extension that indicates that sorting is enabled.", "2016-06-12T00:00:00-00:00"},
	{"standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes", "2016-02-10T10:00:00-00:00"},
	{"stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not", "2019-11-26T09:00:00-00:00"},
	{"standard-attr-tag", "Tag support for resources with standard attribute: port, subnet, network, security_group", "Enables to set tag on resources with standard attribute.", "2017-01-01T00:00:00-00:00"},
	{"standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", "2016-09-12T10:00:00-00:00"},
}

func (e extension) render() object {
	return object{{"name", e.Name}, {"alias", e.Alias}, {"description", e.Description}, {"updated", e.Updated}, {"links", []any{}}}
}

func (s *Server) listExtensions(w http.ResponseWriter, r *request) error {
	out := make([]object, len(extensions))
	for i, e := range extensions {
		out[i] = e.render()
	}
	writeJSON(w, http.StatusOK, map[string]any{"extensions": out})
	return nil
}

func (s *Server) showExtension(w http.ResponseWriter, r *request) error {
	for _, e := range extensions {
		if e.Alias == r.segs[1] {
			writeJSON(w, http.StatusOK, map[string]any{"extension": e.render()})
			return nil
		}
	}
	return neutron.NotFoundGeneric()
}

// versionsDocument is GET /: the API versions, for client discovery.
func versionsDocument(r *http.Request) any {
	return map[string]any{"versions": []object{{
		{"id", "v2.0"}, {"status", "CURRENT"},
		{"links", []object{{{"rel", "self"}, {"href", baseURL(r) + "/v2.0/"}}}},
	}}}
}

// v2Root lists the core resources moat serves (Neutron also lists
// subnetpools; extension resources such as security groups are not listed).
func (s *Server) v2Root(w http.ResponseWriter, r *request) error {
	var out []object
	for _, c := range [][2]string{{"network", "networks"}, {"subnet", "subnets"}, {"port", "ports"}} {
		out = append(out, object{{"name", c[0]}, {"collection", c[1]},
			{"links", []object{{{"rel", "self"}, {"href", baseURL(r.Request) + "/v2.0/" + c[1]}}}}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": out})
	return nil
}
