<?php
// SimpleSAMLphp 1.19 (Debian) as a school's SAML IdP for nymgate's tests. The test harness
// (tests/common/saml.rs) sets NYMGATE_SSP_DIR (its work folder) and NYMGATE_SSP_BASEURL.
$dir = getenv('NYMGATE_SSP_DIR');
$config = [
    'baseurlpath' => getenv('NYMGATE_SSP_BASEURL') . '/',
    'certdir' => $dir . '/cert/',
    'loggingdir' => $dir . '/log/',
    'datadir' => $dir . '/data/',
    'tempdir' => $dir . '/tmp/',
    'metadatadir' => __DIR__ . '/metadata/',
    'technicalcontact_name' => 'nymgate tests',
    'technicalcontact_email' => 'tests@nymgate.invalid',
    'secretsalt' => getenv('NYMGATE_SSP_SALT'),
    'auth.adminpassword' => getenv('NYMGATE_SSP_SALT'),
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'timezone' => 'UTC',
    'logging.level' => SimpleSAML\Logger::WARNING,
    'logging.handler' => 'file',
    'logging.logfile' => 'simplesamlphp.log',
    'enable.saml20-idp' => true,
    // Debian's default is true, which breaks plain http on loopback (shared/PEERS.md).
    'session.cookie.secure' => false,
    'session.phpsession.cookiename' => 'SSPSESSID',
    'store.type' => 'phpsession',
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true, 'admin' => true],
    'language.available' => ['en'],
    'language.default' => 'en',
    'theme.use' => 'default',
    'metadata.sources' => [['type' => 'flatfile']],
];
