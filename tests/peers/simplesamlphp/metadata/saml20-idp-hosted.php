<?php
// Signs Response and Assertion with RSA-SHA256 (exclusive C14N is SimpleSAMLphp's default),
// attribute names as urn:oid URIs, and a persistent NameID from the `uid` attribute.
$metadata['__DYNAMIC:1__'] = [
    'host' => '__DEFAULT__',
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'school-users',
    'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    'saml20.sign.response' => true,
    'saml20.sign.assertion' => true,
    'attributes.NameFormat' => 'urn:oasis:names:tc:SAML:2.0:attrname-format:uri',
    'NameIDFormat' => 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
    'authproc' => [
        10 => ['class' => 'saml:PersistentNameID', 'attribute' => 'uid'],
        // Inline rather than Debian's name2oid file, which lives outside the package's dir.
        90 => [
            'class' => 'core:AttributeMap',
            'uid' => 'urn:oid:0.9.2342.19200300.100.1.1',
            'mail' => 'urn:oid:0.9.2342.19200300.100.1.3',
            'displayName' => 'urn:oid:2.16.840.1.113730.3.1.241',
            'givenName' => 'urn:oid:2.5.4.42',
            'sn' => 'urn:oid:2.5.4.4',
            'eduPersonAffiliation' => 'urn:oid:1.3.6.1.4.1.5923.1.1.1.1',
            'subjectId' => 'urn:oasis:names:tc:SAML:attribute:subject-id',
            'eduPersonPrincipalName' => 'urn:oid:1.3.6.1.4.1.5923.1.1.1.6',
            'norEduPersonNIN' => 'urn:oid:1.3.6.1.4.1.2428.90.1.5',
        ],
    ],
];
