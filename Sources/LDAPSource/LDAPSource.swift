// LDAPSource: see Package.swift for what lives here.
