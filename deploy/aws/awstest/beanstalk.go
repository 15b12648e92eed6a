package awstest

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// An Elastic Beanstalk deploy, as the fake plays it: UpdateEnvironment
// with a VersionLabel answers at once with the environment Updating, its
// health Grey and the new label, and an INFO event "Environment update is
// starting."; after the deploy time the environment is Ready again and
// either Green, with the events of a successful deploy ending in
// "Environment update completed successfully.", or, for a label that
// FailBeanstalkVersion named, Red with ERROR events saying why ("Failed to
// deploy application.") and the label of the last successful deploy back,
// as EB resets the expected version after a failed deployment. Every event
// of a deploy carries the RequestId of its UpdateEnvironment.

// ebApp is a Beanstalk application and its versions.
type ebApp struct {
	name     string
	created  time.Time
	versions []*ebVersion // in the order created
}

type ebVersion struct {
	label       string
	description string
	bucket, key string
	created     time.Time
}

// ebEnv is a Beanstalk environment.
type ebEnv struct {
	app, name, id string
	label         string // the VersionLabel it answers
	lastGood      string // the label of its last successful deploy
	status        string
	health        string
	healthStatus  string
	created       time.Time
	updated       time.Time
}

type ebEvent struct {
	at        time.Time
	app, env  string
	label     string
	severity  string
	message   string
	requestID string
}

// BeanstalkEnvironment is the state of an environment.
type BeanstalkEnvironment struct {
	Application  string
	Name         string
	ID           string // "e-..."
	VersionLabel string
	Status       string // "Ready" or "Updating"
	Health       string // "Green", "Red", or "Grey" while Updating
	HealthStatus string // the enhanced health: "Ok", "Severe", "Info"
	Updated      time.Time
}

// BeanstalkEvent is an event of an environment, as DescribeEvents
// answers it.
type BeanstalkEvent struct {
	Time        time.Time
	Application string
	Environment string
	Severity    string // "INFO", "WARN", "ERROR"
	Message     string
	RequestID   string // of the UpdateEnvironment it comes from
}

// ApplicationVersion is a version of a Beanstalk application.
type ApplicationVersion struct {
	Application string
	Label       string
	Description string
	S3Bucket    string
	S3Key       string
	Created     time.Time
}

// The platform every environment of the fake runs.
const (
	solutionStack = "64bit Amazon Linux 2023 v4.4.0 running Docker"
	platformName  = "Docker running on 64bit Amazon Linux 2023/4.4.0"
)

// AddBeanstalkEnvironment creates application app unless it exists, its
// version initialLabel unless it exists (with a source bundle in the
// bucket elasticbeanstalk-REGION-ACCOUNT), and the environment env,
// Ready and Green with initialLabel deployed, as a test's starting
// point. It returns the environment's ID.
func (f *Fake) AddBeanstalkEnvironment(app, env, initialLabel string) string {
	f.tb.Helper()
	if app == "" || env == "" || initialLabel == "" {
		f.tb.Fatalf("awstest: AddBeanstalkEnvironment(%q, %q, %q): empty name", app, env, initialLabel)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.envLocked(env, "") != nil {
		f.tb.Fatalf("awstest: AddBeanstalkEnvironment: environment %q exists", env)
	}
	now := time.Now()
	a := f.apps[app]
	if a == nil {
		a = &ebApp{name: app, created: now}
		f.apps[app] = a
	}
	if a.version(initialLabel) == nil {
		bucketName := fmt.Sprintf("elasticbeanstalk-%s-%s", f.region, AccountID)
		key := fmt.Sprintf("%s/%s.zip", app, initialLabel)
		b := f.buckets[bucketName]
		if b == nil {
			b = &bucket{name: bucketName, location: f.locationConstraint(), created: now, objects: map[string]*object{}}
			f.buckets[bucketName] = b
		}
		b.objects[key] = newObject([]byte("awstest source bundle "+app+" "+initialLabel+"\n"), "application/zip", now)
		a.versions = append(a.versions, &ebVersion{label: initialLabel, bucket: bucketName, key: key, created: now})
	}
	e := &ebEnv{
		app: app, name: env, id: fmt.Sprintf("e-awst%06d", f.nextID()),
		label: initialLabel, lastGood: initialLabel,
		status: "Ready", health: "Green", healthStatus: "Ok", created: now, updated: now,
	}
	f.envs = append(f.envs, e)
	f.eventLocked(e, "INFO", "createEnvironment completed successfully.", "")
	f.notifyLocked()
	return e.id
}

// FailBeanstalkVersion makes every deploy of label of application app
// fail: the environment ends Ready and Red, back on its last good label,
// with ERROR events that quote reason as the command's output.
func (f *Fake) FailBeanstalkVersion(app, label, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ebFailures[[2]string{app, label}] = reason
}

// BeanstalkEnvironment returns the state of environment name; the zero
// BeanstalkEnvironment if there is none.
func (f *Fake) BeanstalkEnvironment(name string) BeanstalkEnvironment {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.envLocked(name, "")
	if e == nil {
		return BeanstalkEnvironment{}
	}
	return BeanstalkEnvironment{Application: e.app, Name: e.name, ID: e.id, VersionLabel: e.label,
		Status: e.status, Health: e.health, HealthStatus: e.healthStatus, Updated: e.updated}
}

// BeanstalkEvents returns the events of environment env, oldest first.
func (f *Fake) BeanstalkEvents(env string) []BeanstalkEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []BeanstalkEvent
	for _, ev := range f.events {
		if ev.env == env {
			out = append(out, BeanstalkEvent{Time: ev.at, Application: ev.app, Environment: ev.env,
				Severity: ev.severity, Message: ev.message, RequestID: ev.requestID})
		}
	}
	return out
}

// ApplicationVersions returns the versions of application app, oldest
// first.
func (f *Fake) ApplicationVersions(app string) []ApplicationVersion {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.apps[app]
	if a == nil {
		return nil
	}
	var out []ApplicationVersion
	for _, v := range a.versions {
		out = append(out, ApplicationVersion{Application: app, Label: v.label, Description: v.description,
			S3Bucket: v.bucket, S3Key: v.key, Created: v.created})
	}
	return out
}

func (a *ebApp) version(label string) *ebVersion {
	for _, v := range a.versions {
		if v.label == label {
			return v
		}
	}
	return nil
}

// envLocked finds an environment by name or by ID. f.mu must be held.
func (f *Fake) envLocked(name, id string) *ebEnv {
	for _, e := range f.envs {
		if (name != "" && e.name == name) || (id != "" && e.id == id) {
			return e
		}
	}
	return nil
}

// eventLocked records an event of e, now: the events are kept in the
// order they happened, which their dates follow. f.mu must be held.
func (f *Fake) eventLocked(e *ebEnv, severity, message, requestID string) {
	f.events = append(f.events, &ebEvent{at: time.Now().UTC().Truncate(time.Millisecond),
		app: e.app, env: e.name, severity: severity, message: message, requestID: requestID})
}

// memberList reads the list name of a query form: name.member.1, .2...
func memberList(form url.Values, name string) []string {
	type item struct {
		n int
		v string
	}
	var items []item
	prefix := name + ".member."
	for k, v := range form {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if n, err := strconv.Atoi(rest); err == nil {
				items = append(items, item{n, v[0]})
			}
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].n < items[j].n })
	var out []string
	for _, it := range items {
		out = append(out, it.v)
	}
	return out
}

func invalidParameterValue(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "InvalidParameterValue", message: fmt.Sprintf(format, args...)}
}

func (f *Fake) serveBeanstalk(w http.ResponseWriter, req *request) *apiError {
	var result any
	var aerr *apiError
	switch req.op {
	case "CreateApplicationVersion":
		result, aerr = f.createApplicationVersion(req)
	case "DescribeApplicationVersions":
		result, aerr = f.describeApplicationVersions(req)
	case "UpdateEnvironment":
		result, aerr = f.updateEnvironment(req)
	case "DescribeEnvironments":
		result, aerr = f.describeEnvironments(req)
	case "DescribeEvents":
		result, aerr = f.describeEvents(req)
	default:
		return notModeled(Beanstalk, req.op)
	}
	if aerr != nil {
		return aerr
	}
	writeQueryResult(w, req, result)
	return nil
}

// The shapes of Elastic Beanstalk's XML, as the SDK reads them.
type (
	ebVersionXML struct {
		ApplicationVersionArn string      `xml:"ApplicationVersionArn"`
		ApplicationName       string      `xml:"ApplicationName"`
		VersionLabel          string      `xml:"VersionLabel"`
		Description           string      `xml:"Description,omitempty"`
		SourceBundle          *s3Location `xml:"SourceBundle,omitempty"`
		DateCreated           string      `xml:"DateCreated"`
		DateUpdated           string      `xml:"DateUpdated"`
		Status                string      `xml:"Status"`
	}
	s3Location struct {
		S3Bucket string `xml:"S3Bucket"`
		S3Key    string `xml:"S3Key"`
	}
	ebEnvironmentXML struct {
		EnvironmentName              string    `xml:"EnvironmentName"`
		EnvironmentID                string    `xml:"EnvironmentId"`
		EnvironmentArn               string    `xml:"EnvironmentArn"`
		ApplicationName              string    `xml:"ApplicationName"`
		VersionLabel                 string    `xml:"VersionLabel,omitempty"`
		SolutionStackName            string    `xml:"SolutionStackName"`
		PlatformArn                  string    `xml:"PlatformArn"`
		EndpointURL                  string    `xml:"EndpointURL"`
		CNAME                        string    `xml:"CNAME"`
		DateCreated                  string    `xml:"DateCreated"`
		DateUpdated                  string    `xml:"DateUpdated"`
		Status                       string    `xml:"Status"`
		AbortableOperationInProgress bool      `xml:"AbortableOperationInProgress"`
		Health                       string    `xml:"Health"`
		HealthStatus                 string    `xml:"HealthStatus"`
		Tier                         ebTierXML `xml:"Tier"`
		EnvironmentLinks             struct{}  `xml:"EnvironmentLinks"`
	}
	ebTierXML struct {
		Name    string `xml:"Name"`
		Type    string `xml:"Type"`
		Version string `xml:"Version"`
	}
	ebEventXML struct {
		EventDate       string `xml:"EventDate"`
		Message         string `xml:"Message"`
		ApplicationName string `xml:"ApplicationName"`
		EnvironmentName string `xml:"EnvironmentName"`
		RequestID       string `xml:"RequestId,omitempty"`
		Severity        string `xml:"Severity"`
	}
)

func (f *Fake) versionXML(app string, v *ebVersion) ebVersionXML {
	x := ebVersionXML{
		ApplicationVersionArn: fmt.Sprintf("arn:aws:elasticbeanstalk:%s:%s:applicationversion/%s/%s", f.region, AccountID, app, v.label),
		ApplicationName:       app,
		VersionLabel:          v.label,
		Description:           v.description,
		DateCreated:           awsTime(v.created),
		DateUpdated:           awsTime(v.created),
		// EB answers the status in capitals on the wire, whatever the
		// SDK's enum constants say.
		Status: "UNPROCESSED",
	}
	if v.bucket != "" {
		x.SourceBundle = &s3Location{S3Bucket: v.bucket, S3Key: v.key}
	}
	return x
}

func (f *Fake) environmentXML(e *ebEnv) ebEnvironmentXML {
	return ebEnvironmentXML{
		EnvironmentName:              e.name,
		EnvironmentID:                e.id,
		EnvironmentArn:               fmt.Sprintf("arn:aws:elasticbeanstalk:%s:%s:environment/%s/%s", f.region, AccountID, e.app, e.name),
		ApplicationName:              e.app,
		VersionLabel:                 e.label,
		SolutionStackName:            solutionStack,
		PlatformArn:                  fmt.Sprintf("arn:aws:elasticbeanstalk:%s::platform/%s", f.region, platformName),
		EndpointURL:                  fmt.Sprintf("awseb-%s-awstest.%s.elb.amazonaws.com", e.id, f.region),
		CNAME:                        fmt.Sprintf("%s.eba-awstest.%s.elasticbeanstalk.com", e.name, f.region),
		DateCreated:                  awsTime(e.created),
		DateUpdated:                  awsTime(e.updated),
		Status:                       e.status,
		AbortableOperationInProgress: e.status == "Updating",
		Health:                       e.health,
		HealthStatus:                 e.healthStatus,
		Tier:                         ebTierXML{Name: "WebServer", Type: "Standard", Version: "1.0"},
	}
}

type createApplicationVersionResult struct {
	XMLName            xml.Name     `xml:"CreateApplicationVersionResult"`
	ApplicationVersion ebVersionXML `xml:"ApplicationVersion"`
}

func (f *Fake) createApplicationVersion(req *request) (any, *apiError) {
	form := req.form
	app, label := form.Get("ApplicationName"), form.Get("VersionLabel")
	if app == "" || label == "" {
		return nil, &apiError{status: http.StatusBadRequest, code: "MissingParameter",
			message: "The request must contain the parameter ApplicationName and VersionLabel"}
	}
	if len(label) > 100 {
		return nil, &apiError{status: http.StatusBadRequest, code: "ValidationError",
			message: fmt.Sprintf("1 validation error detected: Value '%s' at 'versionLabel' failed to satisfy constraint: Member must have length less than or equal to 100", label)}
	}
	bucketName, key := form.Get("SourceBundle.S3Bucket"), form.Get("SourceBundle.S3Key")
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.apps[app]
	if a == nil && form.Get("AutoCreateApplication") != "true" {
		return nil, invalidParameterValue("No Application named '%s' found.", app)
	}
	if a != nil && a.version(label) != nil {
		return nil, invalidParameterValue("Application Version %s already exists.", label)
	}
	if bucketName != "" || key != "" {
		b := f.buckets[bucketName]
		if b == nil || b.objects[key] == nil {
			return nil, &apiError{status: http.StatusBadRequest, code: "InvalidParameterCombination",
				message: fmt.Sprintf("Unable to download from S3 location (Bucket: %s  Key: %s). Reason: Not Found", bucketName, key)}
		}
	}
	if a == nil {
		a = &ebApp{name: app, created: req.at}
		f.apps[app] = a
	}
	v := &ebVersion{label: label, description: form.Get("Description"), bucket: bucketName, key: key, created: req.at}
	a.versions = append(a.versions, v)
	return createApplicationVersionResult{ApplicationVersion: f.versionXML(app, v)}, nil
}

type describeApplicationVersionsResult struct {
	XMLName             xml.Name `xml:"DescribeApplicationVersionsResult"`
	ApplicationVersions struct {
		Members []ebVersionXML `xml:"member"`
	} `xml:"ApplicationVersions"`
	NextToken string `xml:"NextToken,omitempty"`
}

// ebPage is page with Elastic Beanstalk's refusals.
func ebPage[T any](items []T, form url.Values) ([]T, string, *apiError) {
	max := 0
	if s := form.Get("MaxRecords"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return nil, "", &apiError{status: http.StatusBadRequest, code: "ValidationError",
				message: fmt.Sprintf("1 validation error detected: Value '%s' at 'maxRecords' failed to satisfy constraint: Member must have value less than or equal to 1000", s)}
		}
		max = n
	}
	items, next, ok := page(items, form.Get("NextToken"), max, 1000)
	if !ok {
		return nil, "", invalidParameterValue("Invalid NextToken")
	}
	return items, next, nil
}

func (f *Fake) describeApplicationVersions(req *request) (any, *apiError) {
	app := req.form.Get("ApplicationName")
	labels := memberList(req.form, "VersionLabels")
	f.mu.Lock()
	defer f.mu.Unlock()
	type appVersion struct {
		app string
		v   *ebVersion
	}
	var all []appVersion
	for _, a := range f.apps {
		if app != "" && a.name != app {
			continue
		}
		for _, v := range a.versions {
			if len(labels) == 0 || slices.Contains(labels, v.label) {
				all = append(all, appVersion{a.name, v})
			}
		}
	}
	// Newest first, as EB lists them.
	slices.SortStableFunc(all, func(x, y appVersion) int { return y.v.created.Compare(x.v.created) })
	all, next, aerr := ebPage(all, req.form)
	if aerr != nil {
		return nil, aerr
	}
	var out describeApplicationVersionsResult
	for _, av := range all {
		out.ApplicationVersions.Members = append(out.ApplicationVersions.Members, f.versionXML(av.app, av.v))
	}
	out.NextToken = next
	return out, nil
}

type updateEnvironmentResult struct {
	XMLName xml.Name `xml:"UpdateEnvironmentResult"`
	ebEnvironmentXML
}

func (f *Fake) updateEnvironment(req *request) (any, *apiError) {
	form := req.form
	name, id, label := form.Get("EnvironmentName"), form.Get("EnvironmentId"), form.Get("VersionLabel")
	if name == "" && id == "" {
		return nil, &apiError{status: http.StatusBadRequest, code: "MissingParameter",
			message: "Either EnvironmentName or EnvironmentId must be specified."}
	}
	if label == "" {
		// Configuration updates (option settings, platform, tier) are not
		// modeled: slipway deploys versions.
		return nil, notModeled(Beanstalk, "UpdateEnvironment without VersionLabel")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.envLocked(name, id)
	if e != nil && form.Get("ApplicationName") != "" && form.Get("ApplicationName") != e.app {
		e = nil
	}
	if e == nil {
		if name != "" {
			return nil, invalidParameterValue("No Environment found for EnvironmentName = '%s'.", name)
		}
		return nil, invalidParameterValue("No Environment found for EnvironmentId = '%s'.", id)
	}
	if e.status != "Ready" {
		return nil, invalidParameterValue("Environment named %s is in an invalid state for this operation. Must be Ready.", e.name)
	}
	if f.apps[e.app].version(label) == nil {
		return nil, invalidParameterValue("No Application Version named '%s' found.", label)
	}
	reason, fails := f.ebFailures[[2]string{e.app, label}]
	previousHealth := e.health
	e.status, e.health, e.healthStatus = "Updating", "Grey", "Info"
	e.label, e.updated = label, req.at
	f.eventLocked(e, "INFO", "Environment update is starting.", req.id)
	f.eventLocked(e, "INFO", "Deploying new version to instance(s).", req.id)
	f.scheduleLocked(f.ebDeployTime, func() {
		now := time.Now()
		e.status, e.updated = "Ready", now
		if fails {
			instance := "i-0a5e5eed0a5e5eed0"
			e.health, e.healthStatus = "Red", "Severe"
			e.label = e.lastGood
			f.eventLocked(e, "ERROR", fmt.Sprintf("[Instance: %s] Command failed on instance. Return code: 1 Output: %s.", instance, reason), req.id)
			f.eventLocked(e, "ERROR", fmt.Sprintf("Unsuccessful command execution on instance id(s) '%s'. Aborting the operation.", instance), req.id)
			f.eventLocked(e, "ERROR", "Failed to deploy application.", req.id)
			f.eventLocked(e, "ERROR", "Update environment operation is complete, but with errors. For more information, see troubleshooting documentation.", req.id)
			if previousHealth != "Red" {
				f.eventLocked(e, "WARN", fmt.Sprintf("Environment health has transitioned from %s to RED.", strings.ToUpper(previousHealth)), req.id)
			}
			return
		}
		e.health, e.healthStatus = "Green", "Ok"
		e.lastGood = label
		f.eventLocked(e, "INFO", "New application version was deployed to running EC2 instances.", req.id)
		f.eventLocked(e, "INFO", "Environment update completed successfully.", req.id)
		if previousHealth != "Green" {
			f.eventLocked(e, "INFO", fmt.Sprintf("Environment health has transitioned from %s to GREEN.", strings.ToUpper(previousHealth)), req.id)
		}
	})
	return updateEnvironmentResult{ebEnvironmentXML: f.environmentXML(e)}, nil
}

type describeEnvironmentsResult struct {
	XMLName      xml.Name `xml:"DescribeEnvironmentsResult"`
	Environments struct {
		Members []ebEnvironmentXML `xml:"member"`
	} `xml:"Environments"`
	NextToken string `xml:"NextToken,omitempty"`
}

func (f *Fake) describeEnvironments(req *request) (any, *apiError) {
	form := req.form
	app, label := form.Get("ApplicationName"), form.Get("VersionLabel")
	names, ids := memberList(form, "EnvironmentNames"), memberList(form, "EnvironmentIds")
	f.mu.Lock()
	defer f.mu.Unlock()
	var envs []*ebEnv
	for _, e := range f.envs {
		if (app != "" && e.app != app) || (label != "" && e.label != label) ||
			(len(names) > 0 && !slices.Contains(names, e.name)) || (len(ids) > 0 && !slices.Contains(ids, e.id)) {
			continue
		}
		envs = append(envs, e)
	}
	envs, next, aerr := ebPage(envs, form)
	if aerr != nil {
		return nil, aerr
	}
	var out describeEnvironmentsResult
	for _, e := range envs {
		out.Environments.Members = append(out.Environments.Members, f.environmentXML(e))
	}
	out.NextToken = next
	return out, nil
}

type describeEventsResult struct {
	XMLName xml.Name `xml:"DescribeEventsResult"`
	Events  struct {
		Members []ebEventXML `xml:"member"`
	} `xml:"Events"`
	NextToken string `xml:"NextToken,omitempty"`
}

var severities = []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

func (f *Fake) describeEvents(req *request) (any, *apiError) {
	form := req.form
	var start, end time.Time
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"StartTime", &start}, {"EndTime", &end}} {
		if s := form.Get(t.name); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, invalidParameterValue("Invalid %s: %s", t.name, s)
			}
			*t.to = v
		}
	}
	minSeverity := 0
	if s := form.Get("Severity"); s != "" {
		minSeverity = slices.Index(severities, s)
		if minSeverity < 0 {
			return nil, &apiError{status: http.StatusBadRequest, code: "ValidationError",
				message: fmt.Sprintf("1 validation error detected: Value '%s' at 'severity' failed to satisfy constraint: Member must satisfy enum value set: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]", s)}
		}
	}
	app, envName, envID := form.Get("ApplicationName"), form.Get("EnvironmentName"), form.Get("EnvironmentId")
	label, requestID := form.Get("VersionLabel"), form.Get("RequestId")
	f.mu.Lock()
	defer f.mu.Unlock()
	if envID != "" {
		e := f.envLocked("", envID)
		if e == nil {
			return describeEventsResult{}, nil
		}
		if envName != "" && envName != e.name {
			return describeEventsResult{}, nil
		}
		envName = e.name
	}
	var events []*ebEvent
	for i := len(f.events) - 1; i >= 0; i-- { // newest first
		ev := f.events[i]
		if (app != "" && ev.app != app) || (envName != "" && ev.env != envName) ||
			(label != "" && ev.label != label) || (requestID != "" && ev.requestID != requestID) ||
			(!start.IsZero() && ev.at.Before(start)) || (!end.IsZero() && !ev.at.Before(end)) ||
			slices.Index(severities, ev.severity) < minSeverity {
			continue
		}
		events = append(events, ev)
	}
	events, next, aerr := ebPage(events, form)
	if aerr != nil {
		return nil, aerr
	}
	var out describeEventsResult
	for _, ev := range events {
		out.Events.Members = append(out.Events.Members, ebEventXML{
			EventDate: awsTime(ev.at), Message: ev.message, ApplicationName: ev.app,
			EnvironmentName: ev.env, RequestID: ev.requestID, Severity: ev.severity,
		})
	}
	out.NextToken = next
	return out, nil
}
