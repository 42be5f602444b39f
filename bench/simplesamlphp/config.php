<?php
// SimpleSAMLphp for bench/idp_compare.sh: the test suite's config (tests/peers/simplesamlphp),
// with this folder's metadata, which knows several service providers (the benchmark's own SP,
// SATOSA's SAML backend and nymgate).
require __DIR__ . '/../../tests/peers/simplesamlphp/config.php';
$config['metadatadir'] = __DIR__ . '/metadata/';
