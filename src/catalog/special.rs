//! Addresses a registered upstream may not be reached on unless an admin lists them: every entry of IANA's IPv4
//! and IPv6 Special-Purpose Address Registries (including those IANA marks globally reachable, such as AS112 or
//! AMT: an MCP upstream has no business there), multicast, and the instance-metadata addresses of cloud
//! providers. When IANA adds an entry, it is added here with its RFC, and its test follows from the table.
//!
//! Sources: <https://www.iana.org/assignments/iana-ipv4-special-registry/>,
//! <https://www.iana.org/assignments/iana-ipv6-special-registry/>, each provider's metadata documentation.

/// One special-purpose range: the network (CIDR), its registry name, and where it is defined.
pub struct Special {
    pub network: &'static str,
    pub name: &'static str,
    pub source: &'static str,
}

const fn special(network: &'static str, name: &'static str, source: &'static str) -> Special {
    Special {
        network,
        name,
        source,
    }
}

/// The IPv4 Special-Purpose Address Registry, and multicast.
pub const IPV4: &[Special] = &[
    special("0.0.0.0/8", "This network", "RFC 791"),
    special("10.0.0.0/8", "Private-Use", "RFC 1918"),
    special("100.64.0.0/10", "Shared Address Space", "RFC 6598"),
    special("127.0.0.0/8", "Loopback", "RFC 1122"),
    special("169.254.0.0/16", "Link Local", "RFC 3927"),
    special("172.16.0.0/12", "Private-Use", "RFC 1918"),
    special("192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890"),
    special("192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335"),
    special("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    special("192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723"),
    special(
        "192.0.0.10/32",
        "Traversal Using Relays around NAT Anycast",
        "RFC 8155",
    ),
    special("192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880"),
    special("192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880"),
    special("192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737"),
    special("192.31.196.0/24", "AS112-v4", "RFC 7535"),
    special("192.52.193.0/24", "AMT", "RFC 7450"),
    special(
        "192.88.99.0/24",
        "Deprecated (6to4 Relay Anycast)",
        "RFC 7526",
    ),
    special("192.168.0.0/16", "Private-Use", "RFC 1918"),
    special(
        "192.175.48.0/24",
        "Direct Delegation AS112 Service",
        "RFC 7534",
    ),
    special("198.18.0.0/15", "Benchmarking", "RFC 2544"),
    special("198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737"),
    special("203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737"),
    special("224.0.0.0/4", "Multicast", "RFC 5771"),
    special("240.0.0.0/4", "Reserved", "RFC 1112"),
    special("255.255.255.255/32", "Limited Broadcast", "RFC 8190"),
];

/// The IPv6 Special-Purpose Address Registry, and what else is not a unicast Internet address. IPv4-mapped,
/// IPv4-compatible, NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses are judged as the IPv4 address they
/// carry, before this table.
pub const IPV6: &[Special] = &[
    special("::1/128", "Loopback Address", "RFC 4291"),
    special("::/128", "Unspecified Address", "RFC 4291"),
    special("::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291"),
    special("64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052"),
    special(
        "64:ff9b:1::/48",
        "IPv4-IPv6 Translat. (local use)",
        "RFC 8215",
    ),
    special("100::/64", "Discard-Only Address Block", "RFC 6666"),
    special("100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780"),
    special("2001::/23", "IETF Protocol Assignments", "RFC 2928"),
    special("2001::/32", "TEREDO", "RFC 4380"),
    special("2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723"),
    special(
        "2001:1::2/128",
        "Traversal Using Relays around NAT Anycast",
        "RFC 8155",
    ),
    special(
        "2001:1::3/128",
        "DNS-SD Service Registration Protocol Anycast",
        "RFC 9665",
    ),
    special("2001:2::/48", "Benchmarking", "RFC 5180"),
    special("2001:3::/32", "AMT", "RFC 7450"),
    special("2001:4:112::/48", "AS112-v6", "RFC 7535"),
    special("2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843"),
    special("2001:20::/28", "ORCHIDv2", "RFC 7343"),
    special(
        "2001:30::/28",
        "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
        "RFC 9374",
    ),
    special("2001:db8::/32", "Documentation", "RFC 3849"),
    special("2002::/16", "6to4", "RFC 3056"),
    special(
        "2620:4f:8000::/48",
        "Direct Delegation AS112 Service",
        "RFC 7534",
    ),
    special("3fff::/20", "Documentation", "RFC 9637"),
    special("5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602"),
    special("fc00::/7", "Unique-Local", "RFC 4193"),
    special("fe80::/10", "Link-Local Unicast", "RFC 4291"),
    special("fec0::/10", "Site-Local (deprecated)", "RFC 3879"),
    special("ff00::/8", "Multicast", "RFC 4291"),
];

/// Cloud instance-metadata endpoints: opened only by an exact (/32 or /128) allowlist entry, never by a wider
/// network that contains them.
pub const METADATA: &[Special] = &[
    special(
        "169.254.169.254/32",
        "Instance metadata (AWS, Azure, GCP, Oracle, OpenStack, DigitalOcean, Huawei)",
        "providers",
    ),
    special(
        "169.254.170.2/32",
        "AWS ECS task metadata and credentials",
        "AWS",
    ),
    special("169.254.170.23/32", "AWS EKS Pod Identity", "AWS"),
    special("169.254.0.23/32", "Tencent Cloud metadata", "Tencent Cloud"),
    special(
        "100.100.100.200/32",
        "Alibaba Cloud metadata",
        "Alibaba Cloud",
    ),
    special(
        "192.0.0.192/32",
        "Oracle Cloud metadata (classic)",
        "Oracle Cloud",
    ),
    special("fd00:ec2::254/128", "AWS instance metadata (IPv6)", "AWS"),
    special("fd00:ec2::23/128", "AWS EKS Pod Identity (IPv6)", "AWS"),
];
