package frpconf

import "strings"

// kind is the type of value frp takes at a key.
type kind int

const (
	kString  kind = iota + 1
	kInt          // an integer
	kBool         // true or false
	kStrings      // an array of strings
	kMap          // a table of strings under names of the user's (metadatas, requestHeaders.set)
	kBoolMap      // a table of booleans (featureGates)
	kTables       // an array of tables, whose keys are listed below path[]
)

func (k kind) String() string {
	switch k {
	case kString:
		return "a string"
	case kInt:
		return "an integer"
	case kBool:
		return "true or false"
	case kStrings:
		return "an array of strings"
	case kMap:
		return "a table of strings"
	case kBoolMap:
		return "a table of true/false values"
	case kTables:
		return "an array of tables"
	}
	return "a table"
}

// The keys of frp v0.52+ (its pkg/config/v1), by side, with [] for an
// entry of an array. A table is implied by the keys below it.
var (
	commonKeys = map[string]kind{
		"log.to": kString, "log.level": kString, "log.maxDays": kInt, "log.disablePrintColor": kBool,
		"webServer.addr": kString, "webServer.port": kInt, "webServer.user": kString, "webServer.password": kString,
		"webServer.assetsDir": kString, "webServer.pprofEnable": kBool,
		"webServer.tls.certFile": kString, "webServer.tls.keyFile": kString,
		"webServer.tls.trustedCaFile": kString, "webServer.tls.serverName": kString,
		"auth.method": kString, "auth.additionalScopes": kStrings, "auth.token": kString,
		"auth.tokenSource.type": kString, "auth.tokenSource.file.path": kString,
		"auth.tokenSource.exec.command": kString, "auth.tokenSource.exec.args": kStrings,
		"auth.tokenSource.exec.env": kTables, "auth.tokenSource.exec.env[].name": kString, "auth.tokenSource.exec.env[].value": kString,
		"transport.tcpMux": kBool, "transport.tcpMuxKeepaliveInterval": kInt, "transport.heartbeatTimeout": kInt,
		"transport.quic.keepalivePeriod": kInt, "transport.quic.maxIdleTimeout": kInt, "transport.quic.maxIncomingStreams": kInt,
		"transport.tls.certFile": kString, "transport.tls.keyFile": kString,
		"transport.tls.trustedCaFile": kString, "transport.tls.serverName": kString,
		"udpPacketSize": kInt,
	}
	clientKeys = map[string]kind{
		"clientID": kString, "user": kString, "serverAddr": kString, "serverPort": kInt,
		"natHoleStunServer": kString, "dnsServer": kString, "loginFailExit": kBool, "start": kStrings,
		"featureGates": kBoolMap, "metadatas": kMap, "includes": kStrings, "store.path": kString,
		"virtualNet.address": kString,
		"auth.oidc.clientID": kString, "auth.oidc.clientSecret": kString, "auth.oidc.audience": kString,
		"auth.oidc.scope": kString, "auth.oidc.tokenEndpointURL": kString, "auth.oidc.additionalEndpointParams": kMap,
		"auth.oidc.trustedCaFile": kString, "auth.oidc.insecureSkipVerify": kBool, "auth.oidc.proxyURL": kString,
		"auth.oidc.tokenSource.type": kString, "auth.oidc.tokenSource.file.path": kString,
		"auth.oidc.tokenSource.exec.command": kString, "auth.oidc.tokenSource.exec.args": kStrings,
		"auth.oidc.tokenSource.exec.env": kTables, "auth.oidc.tokenSource.exec.env[].name": kString, "auth.oidc.tokenSource.exec.env[].value": kString,
		"transport.protocol": kString, "transport.wireProtocol": kString, "transport.dialServerTimeout": kInt,
		"transport.dialServerKeepalive": kInt, "transport.connectServerLocalIP": kString, "transport.proxyURL": kString,
		"transport.poolCount": kInt, "transport.heartbeatInterval": kInt,
		"transport.tls.enable": kBool, "transport.tls.disableCustomTLSFirstByte": kBool,

		"proxies":        kTables,
		"proxies[].name": kString, "proxies[].type": kString, "proxies[].enabled": kBool,
		"proxies[].annotations": kMap, "proxies[].metadatas": kMap,
		"proxies[].transport.useEncryption": kBool, "proxies[].transport.useCompression": kBool,
		"proxies[].transport.bandwidthLimit": kString, "proxies[].transport.bandwidthLimitMode": kString,
		"proxies[].transport.proxyProtocolVersion": kString,
		"proxies[].loadBalancer.group":             kString, "proxies[].loadBalancer.groupKey": kString,
		"proxies[].healthCheck.type": kString, "proxies[].healthCheck.timeoutSeconds": kInt,
		"proxies[].healthCheck.maxFailed": kInt, "proxies[].healthCheck.intervalSeconds": kInt,
		"proxies[].healthCheck.path": kString, "proxies[].healthCheck.httpHeaders": kTables,
		"proxies[].healthCheck.httpHeaders[].name": kString, "proxies[].healthCheck.httpHeaders[].value": kString,
		"proxies[].localIP": kString, "proxies[].localPort": kInt, "proxies[].remotePort": kInt,
		"proxies[].customDomains": kStrings, "proxies[].subdomain": kString, "proxies[].locations": kStrings,
		"proxies[].httpUser": kString, "proxies[].httpPassword": kString, "proxies[].hostHeaderRewrite": kString,
		"proxies[].requestHeaders.set": kMap, "proxies[].responseHeaders.set": kMap,
		"proxies[].routeByHTTPUser": kString, "proxies[].multiplexer": kString,
		"proxies[].secretKey": kString, "proxies[].allowUsers": kStrings,
		"proxies[].natTraversal.disableAssistedAddrs": kBool,
		"proxies[].plugin.type":                       kString, "proxies[].plugin.unixPath": kString,
		"proxies[].plugin.username": kString, "proxies[].plugin.password": kString,
		"proxies[].plugin.httpUser": kString, "proxies[].plugin.httpPassword": kString,
		"proxies[].plugin.localPath": kString, "proxies[].plugin.stripPrefix": kString,
		"proxies[].plugin.localAddr": kString, "proxies[].plugin.crtPath": kString, "proxies[].plugin.keyPath": kString,
		"proxies[].plugin.hostHeaderRewrite": kString, "proxies[].plugin.requestHeaders.set": kMap,
		"proxies[].plugin.enableHTTP2": kBool,

		"visitors":        kTables,
		"visitors[].name": kString, "visitors[].type": kString, "visitors[].enabled": kBool,
		"visitors[].transport.useEncryption": kBool, "visitors[].transport.useCompression": kBool,
		"visitors[].secretKey": kString, "visitors[].serverUser": kString, "visitors[].serverName": kString,
		"visitors[].bindAddr": kString, "visitors[].bindPort": kInt,
		"visitors[].plugin.type": kString, "visitors[].plugin.destinationIP": kString,
		"visitors[].protocol": kString, "visitors[].keepTunnelOpen": kBool, "visitors[].maxRetriesAnHour": kInt,
		"visitors[].minRetryInterval": kInt, "visitors[].fallbackTo": kString, "visitors[].fallbackTimeoutMs": kInt,
		"visitors[].natTraversal.disableAssistedAddrs": kBool,
	}
	serverKeys = map[string]kind{
		"bindAddr": kString, "bindPort": kInt, "kcpBindPort": kInt, "quicBindPort": kInt, "proxyBindAddr": kString,
		"vhostHTTPPort": kInt, "vhostHTTPTimeout": kInt, "vhostHTTPSPort": kInt,
		"tcpmuxHTTPConnectPort": kInt, "tcpmuxPassthrough": kBool,
		"subDomainHost": kString, "custom404Page": kString,
		"sshTunnelGateway.bindPort": kInt, "sshTunnelGateway.privateKeyFile": kString,
		"sshTunnelGateway.autoGenPrivateKeyPath": kString, "sshTunnelGateway.authorizedKeysFile": kString,
		"enablePrometheus": kBool, "detailedErrorsToClient": kBool, "maxPortsPerClient": kInt,
		"userConnTimeout": kInt, "natholeAnalysisDataReserveHours": kInt,
		"allowPorts": kTables, "allowPorts[].start": kInt, "allowPorts[].end": kInt, "allowPorts[].single": kInt,
		"httpPlugins": kTables, "httpPlugins[].name": kString, "httpPlugins[].addr": kString,
		"httpPlugins[].path": kString, "httpPlugins[].ops": kStrings, "httpPlugins[].tlsVerify": kBool,
		"auth.oidc.issuer": kString, "auth.oidc.audience": kString,
		"auth.oidc.skipExpiryCheck": kBool, "auth.oidc.skipIssuerCheck": kBool,
		"transport.tcpKeepalive": kInt, "transport.maxPoolCount": kInt, "transport.tls.force": kBool,
	}
	schemas = map[Side]map[string]kind{Client: merge(commonKeys, clientKeys), Server: merge(commonKeys, serverKeys)}
	// tables are the paths of the tables implied by each schema.
	tables = map[Side]map[string]bool{Client: tablesOf(schemas[Client]), Server: tablesOf(schemas[Server])}
)

func merge(ms ...map[string]kind) map[string]kind {
	out := make(map[string]kind)
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func tablesOf(m map[string]kind) map[string]bool {
	out := make(map[string]bool)
	for k := range m {
		for i := range k {
			if k[i] == '.' {
				out[strings.TrimSuffix(k[:i], "[]")] = true
			}
		}
	}
	return out
}
