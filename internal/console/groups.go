package console

import (
	"net/http"
	"net/url"
	"strings"
)

// groupRow is a line of the groups list.
type groupRow struct {
	group
	RuleCount, PortCount int
}

func (c *Console) groupsPage(w http.ResponseWriter, r *http.Request, who *caller) {
	gs, err := c.listGroups(r.Context(), who)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	ports, err := c.listPorts(r.Context(), who, projectQuery(who))
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	uses := map[string]int{}
	for _, p := range ports {
		for _, g := range p.SecurityGroups {
			uses[g]++
		}
	}
	rows := make([]groupRow, len(gs))
	for i, g := range gs {
		rows[i] = groupRow{group: g, RuleCount: len(g.Rules), PortCount: uses[g.ID]}
	}
	p := c.newPage(r, who, "Security Groups", "groups")
	p.Data = rows
	c.render(w, http.StatusOK, "groups", p)
}

func (c *Console) createGroup(w http.ResponseWriter, r *http.Request, who *caller) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" {
		c.fail(w, r, who, badForm("A security group needs a name."))
		return
	}
	body := map[string]any{"name": name, "description": r.PostForm.Get("description")}
	if who.Admin && who.ViewProject != "" {
		body["project_id"] = who.ViewProject
	}
	var out struct {
		Group group `json:"security_group"`
	}
	if err := c.call(r.Context(), who, http.MethodPost, "security-groups", nil, map[string]any{"security_group": body}, &out); err != nil {
		c.fail(w, r, who, err)
		return
	}
	redirect(w, r, Prefix+"/security-groups/"+url.PathEscape(out.Group.ID), "Created security group "+name+".")
}

// confirmData is the confirmation page of a delete.
type confirmData struct {
	What, Name, Action, Back string
}

func (c *Console) deleteGroup(w http.ResponseWriter, r *http.Request, who *caller, id string, post bool) {
	g, err := c.getGroup(r.Context(), who, id)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	if !post {
		p := c.newPage(r, who, "Delete Security Group", "groups")
		p.Data = confirmData{What: "security group", Name: g.Name + " (" + g.ID + ")",
			Action: Prefix + "/security-groups/" + url.PathEscape(id) + "/delete", Back: Prefix + "/security-groups/" + url.PathEscape(id)}
		c.render(w, http.StatusOK, "confirm", p)
		return
	}
	if err := c.call(r.Context(), who, http.MethodDelete, "security-groups/"+url.PathEscape(id), nil, nil, nil); err != nil {
		c.fail(w, r, who, err)
		return
	}
	redirect(w, r, Prefix+"/", "Deleted security group "+g.Name+".")
}

// groupData is the group page.
type groupData struct {
	Group *group
	// Names maps the groups the caller sees to their names (remote
	// groups, the remote group select).
	Names  map[string]string
	Groups []group
	Ports  []port
	// Form is what was typed in the Add Rule form (after a mistake).
	Form      url.Values
	Templates []ruleTemplate
	FormError string
}

func (c *Console) groupPage(w http.ResponseWriter, r *http.Request, who *caller, id string, form url.Values, status int, formErr string) {
	g, err := c.getGroup(r.Context(), who, id)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	gs, err := c.listGroups(r.Context(), who)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	all, err := c.listPorts(r.Context(), who, nil)
	if err != nil {
		c.fail(w, r, who, err)
		return
	}
	var ports []port
	for _, p := range all {
		for _, pg := range p.SecurityGroups {
			if pg == g.ID {
				ports = append(ports, p)
				break
			}
		}
	}
	if form == nil {
		form = url.Values{"rule": {"tcp"}, "direction": {"ingress"}, "port_or_range": {"port"}, "remote": {"cidr"},
			"cidr": {"0.0.0.0/0"}, "ethertype": {"IPv4"}}
	}
	sortRules(g.Rules)
	p := c.newPage(r, who, "Manage Security Group Rules: "+g.Name, "groups")
	p.Data = groupData{Group: g, Names: groupNames(gs), Groups: gs, Ports: ports, Form: form, Templates: ruleTemplates, FormError: formErr}
	c.render(w, status, "group", p)
}

// sortRules orders rules as Horizon lists them: by direction, ether
// type, protocol, port, then id.
func sortRules(rs []rule) {
	key := func(r rule) string {
		return r.Direction + "\x00" + r.EtherType + "\x00" + r.ProtocolText() + "\x00" + r.PortRangeText() + "\x00" + r.ID
	}
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && key(rs[j]) < key(rs[j-1]); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

func (c *Console) createRule(w http.ResponseWriter, r *http.Request, who *caller, id string) {
	body, err := ruleFromForm(id, r.PostForm)
	if err == nil {
		err = c.call(r.Context(), who, http.MethodPost, "security-group-rules", nil, map[string]any{"security_group_rule": body}, nil)
	}
	if err != nil {
		// The form comes back as typed, with the reason.
		status := http.StatusBadRequest
		if ae, ok := err.(*apiError); ok {
			status = ae.Status
			if status == http.StatusNotFound || status == http.StatusUnauthorized {
				c.fail(w, r, who, err)
				return
			}
		}
		c.groupPage(w, r, who, id, r.PostForm, status, err.Error())
		return
	}
	redirect(w, r, Prefix+"/security-groups/"+url.PathEscape(id), "Added the rule.")
}

func (c *Console) deleteRule(w http.ResponseWriter, r *http.Request, who *caller, gid, rid string, post bool) {
	var out struct {
		Rule rule `json:"security_group_rule"`
	}
	if err := c.call(r.Context(), who, http.MethodGet, "security-group-rules/"+url.PathEscape(rid), nil, nil, &out); err != nil {
		c.fail(w, r, who, err)
		return
	}
	back := Prefix + "/security-groups/" + url.PathEscape(gid)
	if !post {
		ru := out.Rule
		p := c.newPage(r, who, "Delete Rule", "groups")
		p.Data = confirmData{What: "rule", Name: ru.DirectionText() + " " + ru.EtherType + " " + ru.ProtocolText() + " " + ru.PortRangeText() + " (" + ru.ID + ")",
			Action: back + "/rules/" + url.PathEscape(rid) + "/delete", Back: back}
		c.render(w, http.StatusOK, "confirm", p)
		return
	}
	if err := c.call(r.Context(), who, http.MethodDelete, "security-group-rules/"+url.PathEscape(rid), nil, nil, nil); err != nil {
		c.fail(w, r, who, err)
		return
	}
	redirect(w, r, back, "Deleted the rule.")
}
